//! What the data leave open, sampled once per synthetic episode (issue 31, part 1).
//!
//! In a partially observable world what a place holds is hidden until the agent gets there, and
//! differs between instances. On an instance without real evidence of its own the native model
//! can only predict the majority outcome of other worlds, and a policy trained on that learns a
//! fixed route where it should search (World Models: a mode-seeking dream is exploited). Here the
//! model is given a *sampled world* instead: for each place an arrival shows something (an action
//! whose outcome in the training data shows entities that differ between episodes: `go to
//! countertop 1`, `open fridge 1`), an outcome drawn from what training arrivals there showed,
//! and for the object the instruction names, a place drawn from where it was found.
//!
//! - **Reveals** ([`WorldPrior::fit`]): an action's *own* entities are those its outcome shows
//!   nearly always (the place arrived at); the entities an outcome adds beyond them and beyond the
//!   state are *revealed*. An action reveals when its first-visit outcomes in the training
//!   episodes show at least two different revealed sets. Only steps that paid nothing and did not
//!   end the episode count.
//! - **The instruction's object**: a revealed entity whose name (its id without the trailing
//!   number, `potato_1` → `potato`) the instruction says. Its place is drawn with probability
//!   proportional to the smoothed rate at which first visits there found the instruction's object
//!   (`(found + 2 r) / (visits + 2)`, `r` the rate over all places: a visit that found nothing is
//!   evidence against the place, and a place seldom visited keeps about the average rate),
//!   kept apart for places the instruction itself names (`put it in/on sink basin 1`: the object
//!   is never there to begin with) and per difficulty level where the data has one.
//! - **Other entities**: each place takes the revealed lines of one training arrival there, drawn
//!   at random (so an empty place stays likely empty), less entities already placed.
//! - The draw is given to the model as *retrieved arrivals* (see [`super::env::ModelEnv`]): the
//!   recall stages then show it on arrival and keep it consistent through the episode (a place
//!   shows the same thing on every visit, and what the agent took away stays taken).
//!
//! [`WorldPrior::score`] reports the prior's quality on held-out episodes: the share of the
//! instruction objects' revealed places it gives mass to (coverage) and their mean
//! log-likelihood.

use crate::model::lines::line_id;
use dreamgym_buffer::{Provenance, Step, Task, Trajectory};
use rand::{Rng, RngExt};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Smoothing of a place's find rate: pseudo-visits at the rate over all places.
const PRIOR_WEIGHT: f64 = 2.0;
/// Share of an action's outcomes that must show an entity for it to be the action's own.
const OWN_SHARE: f64 = 0.9;

/// One first-visit arrival of the training data at a revealing action.
#[derive(Debug, Clone)]
struct Arrival {
    /// The real step (its instruction is rewritten to the episode's when drawn).
    step: Step,
    /// The revealed lines of its outcome.
    revealed: Vec<String>,
    /// The task's difficulty level.
    difficulty: u32,
}

/// A distribution over what the hidden parts of a world hold, fit on real training episodes.
#[derive(Debug, Clone, Default)]
pub struct WorldPrior {
    /// First-visit arrivals per revealing action (ordered, so draws are deterministic).
    arrivals: BTreeMap<String, Vec<Arrival>>,
    /// Per revealing action, the lines every arrival there shows besides what it revealed and
    /// the entities (the place itself): a first observation that shows them all is already there.
    own_lines: BTreeMap<String, Vec<String>>,
    /// Revealed entities by name (`"potato"` → `"potato_1"`).
    entities: BTreeMap<String, String>,
    /// Per (difficulty, action, the instruction names the action's place): first visits that
    /// found the instruction's object, and first visits (of tasks whose object is known).
    finds: HashMap<(u32, String, bool), (u32, u32)>,
}

/// The prior's quality on held-out episodes (see [`WorldPrior::score`]).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct PriorScore {
    /// Held-out first visits that revealed the instruction's object.
    pub reveals: usize,
    /// Share of them at a place the prior gives mass to.
    pub coverage: f64,
    /// Mean natural log-probability of the place (over the covered ones).
    pub log_likelihood: f64,
    /// Log-likelihood of the uniform choice among the revealing places, for comparison.
    pub uniform_log_likelihood: f64,
}

/// The name of an entity id: without a trailing `_N`, underscores as spaces.
fn entity_name(id: &str) -> String {
    let base = match id.rsplit_once('_') {
        Some((b, n)) if !b.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => b,
        _ => id,
    };
    base.replace('_', " ")
}

/// Whether `phrase`'s words occur in `text`'s words, contiguously.
fn says(text: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && text.windows(phrase.len()).any(|w| w == phrase)
}

fn words_of(text: &str) -> Vec<String> {
    crate::model::words(text).collect()
}

/// Whether the instruction names the place `action` leads to: some ending of the action of at
/// least two words (`sink basin 1` of `go to sink basin 1`) is in the instruction.
fn names_place(instruction: &[String], action: &str) -> bool {
    let a = words_of(action);
    (0..a.len().saturating_sub(1)).any(|k| a.len() - k >= 2 && says(instruction, &a[k..]))
}

/// `text` with whole-word occurrences of `from` replaced by `to` (and `[from_id]` by `[to_id]`).
fn rename(text: &str, from: (&str, &str), to: (&str, &str)) -> String {
    let text = text.replace(&format!("[{}]", from.0), &format!("[{}]", to.0));
    let (name, new) = (from.1, to.1);
    if name.is_empty() {
        return text;
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(k) = rest.find(name) {
        out.push_str(&rest[..k]);
        let after = rest[k + name.len()..].chars().next();
        if word(out.chars().next_back()) || word(after) {
            out.push_str(name);
        } else {
            out.push_str(new);
        }
        rest = &rest[k + name.len()..];
    }
    out.push_str(rest);
    out
}

/// Whether `action` mentions the entity named `name` (as whole words).
fn mentions(action: &str, name: &str) -> bool {
    says(&words_of(action), &words_of(name))
}

impl WorldPrior {
    /// Fit on real trajectories (synthetic and unrewarded ones are skipped).
    pub fn fit(real: &[Trajectory]) -> Self {
        let real: Vec<&Trajectory> = real
            .iter()
            .filter(|t| t.provenance == Provenance::Real)
            .collect();
        // 1. each action's own entities: those (nearly) all its outcomes add
        let mut seen: HashMap<&str, (usize, HashMap<&str, usize>)> = HashMap::new();
        for t in &real {
            for s in &t.steps {
                let before: HashSet<&str> =
                    s.state.lines.iter().filter_map(|l| line_id(l)).collect();
                let added: HashSet<&str> = s
                    .next_state
                    .lines
                    .iter()
                    .filter_map(|l| line_id(l))
                    .filter(|id| !before.contains(id))
                    .collect();
                let e = seen.entry(s.action.as_str()).or_default();
                e.0 += 1;
                for id in added {
                    *e.1.entry(id).or_default() += 1;
                }
            }
        }
        let own: HashMap<&str, HashSet<&str>> = seen
            .iter()
            .map(|(a, (n, ids))| {
                let own = ids
                    .iter()
                    .filter(|&(_, &c)| c as f64 >= OWN_SHARE * *n as f64)
                    .map(|(&id, _)| id)
                    .collect();
                (*a, own)
            })
            .collect();
        // 2. first-visit arrivals and what they revealed
        let mut arrivals: BTreeMap<String, Vec<Arrival>> = BTreeMap::new();
        for t in &real {
            let mut visited: HashSet<&str> = HashSet::new();
            for s in &t.steps {
                if !visited.insert(s.action.as_str()) || s.reward != 0.0 || s.done {
                    continue;
                }
                let before: HashSet<&str> =
                    s.state.lines.iter().filter_map(|l| line_id(l)).collect();
                let own = &own[s.action.as_str()];
                let revealed: Vec<String> = s
                    .next_state
                    .lines
                    .iter()
                    .filter(|l| {
                        line_id(l).is_some_and(|id| !before.contains(id) && !own.contains(id))
                    })
                    .cloned()
                    .collect();
                arrivals.entry(s.action.clone()).or_default().push(Arrival {
                    step: s.clone(),
                    revealed,
                    difficulty: t.task.difficulty,
                });
            }
        }
        // an action reveals when its arrivals show at least two different things
        arrivals.retain(|_, v| {
            let kinds: BTreeSet<BTreeSet<&String>> =
                v.iter().map(|a| a.revealed.iter().collect()).collect();
            kinds.len() >= 2
        });
        let entities: BTreeMap<String, String> = arrivals
            .values()
            .flatten()
            .flat_map(|a| a.revealed.iter().filter_map(|l| line_id(l)))
            .map(|id| (entity_name(id), id.to_string()))
            .collect();
        let mut prior = WorldPrior {
            arrivals,
            entities,
            finds: HashMap::new(),
            own_lines: BTreeMap::new(),
        };
        for (action, v) in &prior.arrivals {
            let mut own: Option<Vec<String>> = None;
            for a in v {
                let lines: Vec<String> = a
                    .step
                    .next_state
                    .lines
                    .iter()
                    .filter(|l| line_id(l).is_some_and(|id| !prior.is_entity(id)))
                    .cloned()
                    .collect();
                own = Some(match own {
                    None => lines,
                    Some(o) => o.into_iter().filter(|l| lines.contains(l)).collect(),
                });
            }
            prior
                .own_lines
                .insert(action.clone(), own.unwrap_or_default());
        }
        // 3. where the instruction's object was found, and where it was not
        let mut finds: HashMap<(u32, String, bool), (u32, u32)> = HashMap::new();
        for (action, v) in &prior.arrivals {
            for a in v {
                let instruction = words_of(&a.step.state.instruction);
                let Some((_, id)) = prior.named_in(&instruction) else {
                    continue;
                };
                let found = a.revealed.iter().any(|l| line_id(l) == Some(id));
                let key = (
                    a.difficulty,
                    action.clone(),
                    names_place(&instruction, action),
                );
                let e = finds.entry(key).or_default();
                e.0 += u32::from(found);
                e.1 += 1;
            }
        }
        prior.finds = finds;
        prior
    }

    /// Whether `id` is an entity some arrival revealed.
    fn is_entity(&self, id: &str) -> bool {
        self.entities.get(&entity_name(id)).is_some_and(|e| e == id)
    }

    /// The revealing actions whose place `lines` (a first observation) already show: the agent
    /// is there, and what is there is what the observation shows.
    pub fn shown_by(&self, lines: &[String]) -> impl Iterator<Item = &str> {
        self.own_lines
            .iter()
            .filter(|(_, own)| !own.is_empty() && own.iter().all(|l| lines.contains(l)))
            .map(|(a, _)| a.as_str())
    }

    /// Whether the data leave anything open (some action reveals).
    pub fn is_empty(&self) -> bool {
        self.arrivals.is_empty()
    }

    /// The revealing actions.
    pub fn revealing_actions(&self) -> impl Iterator<Item = &str> {
        self.arrivals.keys().map(String::as_str)
    }

    /// The revealed entity the instruction names (the earliest-named, then the longest name):
    /// its name and id.
    fn named_in(&self, instruction: &[String]) -> Option<(&str, &str)> {
        self.entities
            .iter()
            .filter_map(|(name, id)| {
                let w = words_of(name);
                let at = instruction
                    .windows(w.len())
                    .position(|x| x == w.as_slice())?;
                Some((at, std::cmp::Reverse(w.len()), name.as_str(), id.as_str()))
            })
            .min()
            .map(|(_, _, n, id)| (n, id))
    }

    /// The difficulty level whose counts a task of `difficulty` uses: its own where the data
    /// has arrivals of it, else none (all levels pooled).
    fn level(&self, difficulty: u32) -> Option<u32> {
        self.arrivals
            .values()
            .flatten()
            .any(|a| a.difficulty == difficulty)
            .then_some(difficulty)
    }

    /// The probability of each place (revealing action, not in `covered`) holding the object of
    /// `instruction` at the start of an episode, from the counts of `level` (see [`Self::level`]).
    fn object_places(
        &self,
        instruction: &[String],
        level: Option<u32>,
        covered: &HashSet<String>,
    ) -> Vec<(&str, f64)> {
        let counts = |a: &str, flag: bool| {
            self.finds
                .iter()
                .filter(|((d, act, fl), _)| {
                    act == a && *fl == flag && level.is_none_or(|l| l == *d)
                })
                .fold((0u32, 0u32), |acc, (_, &(f, n))| (acc.0 + f, acc.1 + n))
        };
        // the rate of a place with few visits shrinks to the rate over all places
        let (f_all, n_all) = self
            .finds
            .iter()
            .filter(|((d, _, _), _)| level.is_none_or(|l| l == *d))
            .fold((0u32, 0u32), |acc, (_, &(f, n))| (acc.0 + f, acc.1 + n));
        let base = (f64::from(f_all) + 1.0) / (f64::from(n_all) + 2.0);
        let mut w: Vec<(&str, f64)> = self
            .arrivals
            .keys()
            .filter(|a| !covered.contains(*a))
            .map(|a| {
                let (f, n) = counts(a, names_place(instruction, a));
                (
                    a.as_str(),
                    (f64::from(f) + PRIOR_WEIGHT * base) / (f64::from(n) + PRIOR_WEIGHT),
                )
            })
            .collect();
        let total: f64 = w.iter().map(|x| x.1).sum();
        for x in &mut w {
            x.1 /= total.max(f64::MIN_POSITIVE);
        }
        w
    }

    /// Draw a world for an episode of `task`: one arrival per revealing action not in
    /// `covered` (actions the episode's own real evidence already shows), leaving out entities
    /// in `known` (those the evidence or the first observation shows). The arrivals are real
    /// steps rewritten to the draw, under `task`'s instruction, for the model's retrieval.
    pub fn draw(
        &self,
        task: &Task,
        rng: &mut impl Rng,
        covered: &HashSet<String>,
        known: &HashSet<String>,
    ) -> Vec<Step> {
        let instruction = words_of(&task.instruction);
        let level = self.level(task.difficulty);
        let named = self
            .named_in(&instruction)
            .filter(|(_, id)| !known.contains(*id));
        // the object's place
        let object_at = named.and_then(|_| {
            let places = self.object_places(&instruction, level, covered);
            let mut u: f64 = rng.random();
            for (a, p) in &places {
                if u < *p {
                    return Some(*a);
                }
                u -= p;
            }
            places.last().map(|x| x.0)
        });
        let mut placed: HashSet<String> = known.clone();
        if let Some((_, id)) = named {
            placed.insert(id.to_string());
        }
        let mut out = vec![];
        for (action, v) in &self.arrivals {
            if covered.contains(action) {
                continue;
            }
            let pool: Vec<&Arrival> = v
                .iter()
                .filter(|a| level.is_none_or(|l| l == a.difficulty))
                .collect();
            let pool = if pool.is_empty() {
                v.iter().collect()
            } else {
                pool
            };
            let base = pool[rng.random_range(0..pool.len())];
            let mut step = base.step.clone();
            // the entities shown here: the base's revealed ones not placed elsewhere; the
            // lines and actions of every other entity (what the base's agent carried) go
            let mut here: HashSet<&str> = HashSet::new();
            for id in base.revealed.iter().filter_map(|l| line_id(l)) {
                if !placed.contains(id) {
                    here.insert(id);
                }
            }
            placed.extend(here.iter().map(|id| id.to_string()));
            let object_here = named.filter(|_| object_at == Some(action.as_str()));
            if let Some((_, id)) = object_here {
                here.insert(id);
            }
            let keep =
                |l: &String| line_id(l).is_none_or(|id| here.contains(id) || !self.is_entity(id));
            step.state.lines.retain(keep);
            step.next_state.lines.retain(keep);
            let gone: Vec<&str> = self
                .entities
                .iter()
                .filter(|(_, id)| !here.contains(id.as_str()))
                .map(|(name, _)| name.as_str())
                .collect();
            let keep_action = |a: &String| !gone.iter().any(|n| mentions(a, n));
            step.state.admissible.retain(keep_action);
            step.next_state.admissible.retain(keep_action);
            if let Some((name, id)) = object_here {
                self.add_object(&mut step, action, (id, name));
            }
            step.state.instruction = task.instruction.clone();
            step.next_state.instruction = task.instruction.clone();
            step.provenance = Provenance::Real;
            out.push(step);
        }
        out
    }

    /// Put the entity `to` (id, name) into `step`'s outcome at `action`: a line (and the actions
    /// that came with it) of an entity some training arrival there revealed, renamed.
    fn add_object(&self, step: &mut Step, action: &str, to: (&str, &str)) {
        let Some((a, line)) = self.arrivals[action]
            .iter()
            .flat_map(|a| a.revealed.iter().map(move |l| (a, l)))
            .next()
        else {
            return;
        };
        let Some(from_id) = line_id(line) else {
            return;
        };
        let from_name = entity_name(from_id);
        let from = (from_id, from_name.as_str());
        let new_line = rename(line, from, to);
        if !step.next_state.lines.contains(&new_line) {
            step.next_state.lines.push(new_line);
        }
        let before: HashSet<&String> = a.step.state.admissible.iter().collect();
        for act in &a.step.next_state.admissible {
            if !before.contains(act) && mentions(act, &from_name) {
                let renamed = rename(act, from, to);
                if !step.next_state.admissible.contains(&renamed) {
                    step.next_state.admissible.push(renamed);
                }
            }
        }
    }

    /// The prior's quality on `heldout` real episodes: where their first visits revealed the
    /// instruction's object, the probability the prior gave that place.
    pub fn score(&self, heldout: &[Trajectory]) -> PriorScore {
        let mut score = PriorScore::default();
        let (mut covered, mut ll, mut uniform) = (0usize, 0.0, 0.0);
        let none = HashSet::new();
        for t in heldout.iter().filter(|t| t.provenance == Provenance::Real) {
            let instruction = words_of(&t.task.instruction);
            let Some((_, id)) = self.named_in(&instruction) else {
                continue;
            };
            let mut visited: HashSet<&str> = HashSet::new();
            for s in &t.steps {
                if !visited.insert(s.action.as_str()) {
                    continue;
                }
                let before: HashSet<&str> =
                    s.state.lines.iter().filter_map(|l| line_id(l)).collect();
                if before.contains(id) || !s.next_state.lines.iter().any(|l| line_id(l) == Some(id))
                {
                    continue;
                }
                score.reveals += 1;
                let places = self.object_places(&instruction, self.level(t.task.difficulty), &none);
                if let Some((_, p)) = places.iter().find(|(a, _)| *a == s.action)
                    && *p > 0.0
                {
                    covered += 1;
                    ll += p.ln();
                    uniform += -(places.len() as f64).ln();
                }
                break;
            }
        }
        if score.reveals > 0 {
            score.coverage = covered as f64 / score.reveals as f64;
        }
        if covered > 0 {
            score.log_likelihood = ll / covered as f64;
            score.uniform_log_likelihood = uniform / covered as f64;
        }
        score
    }
}

#[cfg(test)]
mod tests {
    use super::{WorldPrior, entity_name, rename};
    use crate::model::{test_observation, test_step, test_task};
    use dreamgym_buffer::{Provenance, Trajectory};
    use std::collections::HashSet;

    /// An episode of "heat some {object} ...": start at the shelf, go to the counter (which
    /// holds `counter`), then to the table (which holds `table`).
    fn episode(object: &str, counter: &[&str], table: &[&str]) -> Trajectory {
        let instruction = format!("heat some {object} and put it in/on sink basin 1");
        let at = |place: &str, items: &[&str]| {
            let mut lines = vec![format!("[{place}_1] location: you are at {place} 1")];
            lines.extend(
                items
                    .iter()
                    .map(|i| format!("[{i}_1] item: a {i} in/on {place} 1")),
            );
            let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
            let mut o = test_observation(&lines, &instruction);
            o.admissible = items
                .iter()
                .map(|i| format!("take {i} from {place} 1"))
                .collect();
            o
        };
        let start = at("shelf", &[]);
        let counter_o = at("countertop", counter);
        let table_o = at("table", table);
        let steps = vec![
            test_step(start, "go to countertop 1", counter_o.clone()),
            test_step(counter_o, "go to table 1", table_o),
        ];
        let mut task = test_task(&instruction);
        task.id = format!("{object}/{}/{}", counter.join("+"), table.join("+"));
        Trajectory {
            task,
            env_id: "test".into(),
            seed: 0,
            provenance: Provenance::Real,
            policy: "test".into(),
            outcome: Trajectory::outcome_from_steps(&steps, false),
            steps,
        }
    }

    fn data() -> Vec<Trajectory> {
        vec![
            episode("potato", &["potato"], &[]),
            episode("potato", &["potato", "mug"], &[]),
            episode("apple", &["apple"], &["mug"]),
            episode("apple", &[], &["apple"]),
        ]
    }

    #[test]
    fn names_and_renames_entities() {
        assert_eq!(entity_name("potato_1"), "potato");
        assert_eq!(entity_name("dining_table_2"), "dining table");
        assert_eq!(
            rename(
                "[apple_1] item: a apple in/on pineapple rack",
                ("apple_1", "apple"),
                ("egg_1", "egg")
            ),
            "[egg_1] item: a egg in/on pineapple rack"
        );
    }

    #[test]
    fn revealing_actions_and_the_objects_places() {
        let prior = WorldPrior::fit(&data());
        let revealing: Vec<&str> = prior.revealing_actions().collect();
        assert_eq!(revealing, ["go to countertop 1", "go to table 1"]);
        // the counter found the object 3 times in 4 first visits, the table once in 4
        let instruction = super::words_of("heat some egg and put it in/on sink basin 1");
        let places = prior.object_places(&instruction, prior.level(1), &HashSet::new());
        let p: Vec<f64> = places.iter().map(|x| x.1).collect();
        // (smoothed by 2 visits at the rate over both places, 4 / 8)
        let (c, t) = ((3.0 + 1.0) / 6.0, (1.0 + 1.0) / 6.0);
        assert!((p[0] - c / (c + t)).abs() < 1e-9, "{p:?}");
        assert!((p[0] + p[1] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_draw_places_the_named_object_once_and_varies_with_the_seed() {
        use rand::SeedableRng;
        let prior = WorldPrior::fit(&data());
        let mut task = test_task("heat some potato and put it in/on sink basin 1");
        task.id = "new".into();
        let none = HashSet::new();
        let mut at_counter = 0;
        for seed in 0..200 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let world = prior.draw(&task, &mut rng, &none, &none);
            assert_eq!(world.len(), 2);
            let holding: Vec<&str> = world
                .iter()
                .filter(|s| {
                    s.next_state
                        .lines
                        .iter()
                        .any(|l| l.starts_with("[potato_1] item"))
                })
                .map(|s| s.action.as_str())
                .collect();
            assert_eq!(
                holding.len(),
                1,
                "the object is in exactly one place: {world:?}"
            );
            let s = world.iter().find(|s| s.action == holding[0]).unwrap();
            let place = if holding[0] == "go to table 1" {
                "table 1"
            } else {
                "countertop 1"
            };
            assert!(
                s.next_state
                    .admissible
                    .contains(&format!("take potato from {place}"))
            );
            assert!(
                s.next_state
                    .lines
                    .contains(&format!("[potato_1] item: a potato in/on {place}"))
            );
            // no entity twice
            let ids: Vec<&String> = world
                .iter()
                .flat_map(|s| s.next_state.lines.iter())
                .filter(|l| l.contains("item:"))
                .collect();
            assert_eq!(ids.len(), ids.iter().collect::<HashSet<_>>().len());
            for s in &world {
                assert_eq!(s.state.instruction, task.instruction);
                assert_eq!(s.provenance, Provenance::Real);
            }
            at_counter += usize::from(holding[0] == "go to countertop 1");
            // the same seed, the same world
            let mut again = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            assert_eq!(world, prior.draw(&task, &mut again, &none, &none));
        }
        // P(counter) = 2 / 3
        assert!(
            (110..160).contains(&at_counter),
            "{at_counter} of 200 at the counter"
        );
        // evidence: a place the episode's real data covers is not drawn; a known object stays put
        let covered: HashSet<String> = ["go to countertop 1".to_string()].into();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let world = prior.draw(&task, &mut rng, &covered, &none);
        assert_eq!(world.len(), 1);
        assert!(
            world[0]
                .next_state
                .lines
                .iter()
                .any(|l| l.starts_with("[potato_1]"))
        );
        let known: HashSet<String> = ["potato_1".to_string()].into();
        let world = prior.draw(&task, &mut rng, &none, &known);
        assert!(world.iter().all(|s| {
            !s.next_state
                .lines
                .iter()
                .any(|l| l.starts_with("[potato_1]"))
        }));
    }

    #[test]
    fn the_score_covers_held_out_places_and_rewards_a_sharper_prior() {
        let prior = WorldPrior::fit(&data());
        let held = vec![
            episode("potato", &["potato"], &[]),
            episode("apple", &[], &["apple"]),
            episode("mug", &[], &[]),
            // an object no training episode revealed is not named: not scored
            episode("egg", &["egg"], &[]),
        ];
        let s = prior.score(&held);
        assert_eq!(s.reveals, 2, "the mug was never found, the egg is unknown");
        assert_eq!(s.coverage, 1.0);
        let (c, t) = ((3.0f64 + 1.0) / 6.0, (1.0 + 1.0) / 6.0);
        let expected = ((c / (c + t)).ln() + (t / (c + t)).ln()) / 2.0;
        assert!((s.log_likelihood - expected).abs() < 1e-9);
        assert!((s.uniform_log_likelihood - 0.5f64.ln()).abs() < 1e-9);
    }
}
