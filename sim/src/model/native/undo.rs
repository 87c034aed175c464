//! Undoing: actions that take the agent back where it came from. In training, after a step that
//! changed the state (`move east`, `close door to west`) and any steps that changed nothing, an
//! action (`move west`, `open door to west`) either restored the state that step started from
//! or did not; per pair of actions the model counts both. Where a pair always restored it, the
//! same pair in a new episode undoes that step's change to the state as this episode showed it:
//! what the step took away comes back, what it brought goes — what the agent saw there, not what
//! other worlds' places held, which is what memory and rules would guess in a world never seen.
//! The pair is a pair of action texts: `move west` undoes `move east` in every world, whatever
//! the rooms are called.
//!
//! Steps may lie between the two: the agent went east, put something down there and goes back
//! west; it closed a door, took the coin and opens the door again. Their changes stay, except
//! lines of kinds the pair's second action took away almost whole in training (the room's
//! sentences on a move back, not the inventory): those went with the place. This holds only
//! while the agent is still where the first action took it (at least half of what it brought
//! is still shown) and nothing since took away what the first action did (a line it took away
//! came back, or one it brought went); otherwise the stage says nothing.
//!
//! The stage corrects what a prediction *shows*, after the other stages: rewards and `done`
//! stay with the stages that learnt them (dropping a box where the task wants it pays though
//! it undoes picking it up), and a pair is trusted only where its returns never paid.

use super::apply::splice;
use crate::model::fidelity::same_set;
use crate::model::lines::{diff, line_kind};
use crate::model::{ModelContext, Prediction};
use dreamgym_buffer::{Observation, Step};
use rustc_hash::FxHashMap;

/// Least times a pair must have followed in training before it is trusted.
const MIN_SEEN: u32 = 3;

/// Least share of those times it must have restored the earlier state.
const MIN_SHARE: f32 = 0.9;

/// What one pair of actions did in training.
#[derive(Debug, Clone)]
struct Record {
    /// Times the second action restored the state the first one started from.
    back: u32,
    /// Times the second action followed the first (with only unchanging steps between).
    seen: u32,
    /// Whether every such step paid nothing and did not end the episode.
    neutral: bool,
    /// Per kind of line, over the states the second action restored from: lines shown, lines
    /// taken away.
    kinds: Vec<(String, u32, u32)>,
    /// The two actions.
    actions: (String, String),
}

impl Record {
    /// Whether the second action took away at least 90% of the lines of `kind` it found where
    /// it restored a state: such lines belong to the place it leaves.
    fn takes_away(&self, kind: &str) -> bool {
        self.kinds
            .iter()
            .any(|(k, shown, gone)| k == kind && *gone as f32 >= MIN_SHARE * *shown as f32)
    }

    /// Whether the pair is trusted: seen often enough, restoring almost always, never paying.
    fn trusted(&self) -> bool {
        self.neutral && self.seen >= MIN_SEEN && self.back as f32 >= MIN_SHARE * self.seen as f32
    }
}

/// The pairs of actions seen in training and how often the second undid the first.
#[derive(Debug, Default)]
pub(super) struct Undoing {
    pairs: FxHashMap<u64, Record>,
    /// For each action, the actions it is trusted to undo (set by [`Self::finish`]): most
    /// actions undo none, and a prediction for those costs one lookup.
    undoes: FxHashMap<String, Vec<String>>,
}

/// The key of a pair: the action that changed the state, then the one taken after it.
fn pair(first: &str, then: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one((first, then))
}

/// Counts, per kind of line `s`'s state shows, its lines and those its next state lacks.
fn record_kinds(kinds: &mut Vec<(String, u32, u32)>, s: &Step) {
    for l in &s.state.lines {
        let kind = line_kind(l);
        let i = match kinds.iter().position(|(k, ..)| k == kind) {
            Some(i) => i,
            None => {
                kinds.push((kind.to_string(), 0, 0));
                kinds.len() - 1
            }
        };
        kinds[i].1 += 1;
        kinds[i].2 += !s.next_state.lines.contains(l) as u32;
    }
}

impl Undoing {
    /// Counts the pairs of one training trajectory.
    pub(super) fn learn(&mut self, steps: &[Step]) {
        let mut changed: Option<usize> = None;
        for (t, s) in steps.iter().enumerate() {
            if let Some(j) = changed {
                let r = self
                    .pairs
                    .entry(pair(&steps[j].action, &s.action))
                    .or_insert(Record {
                        back: 0,
                        seen: 0,
                        neutral: true,
                        kinds: vec![],
                        actions: (steps[j].action.clone(), s.action.clone()),
                    });
                r.seen += 1;
                r.neutral &= s.reward == 0.0 && !s.done;
                if same_set(&s.next_state.lines, &steps[j].state.lines) {
                    r.back += 1;
                    record_kinds(&mut r.kinds, s);
                }
            }
            if s.state.lines != s.next_state.lines {
                changed = Some(t);
            }
        }
    }

    /// Indexes the trusted pairs by their second action; call after the last [`Self::learn`].
    pub(super) fn finish(&mut self) {
        self.undoes.clear();
        for r in self.pairs.values().filter(|r| r.trusted()) {
            let (first, then) = &r.actions;
            self.undoes
                .entry(then.clone())
                .or_default()
                .push(first.clone());
        }
        for firsts in self.undoes.values_mut() {
            firsts.sort();
        }
    }

    /// The state the action goes back to, as this episode showed it, when training says this
    /// action undoes a change the episode made (see the module docs); reward 0, not done (the
    /// caller keeps its own).
    pub(super) fn predict(&self, ctx: &ModelContext) -> Option<Prediction> {
        let history = ctx.history;
        if history.last()?.next_state.lines != ctx.state.lines {
            return None;
        }
        // the latest change this action is known to undo
        let firsts = self.undoes.get(ctx.action)?;
        let (j, r) = history.iter().enumerate().rev().find_map(|(j, h)| {
            // (the cheap tests first)
            if !firsts.contains(&h.action) || h.state.lines == h.next_state.lines {
                return None;
            }
            Some((j, self.pairs.get(&pair(&h.action, ctx.action))?))
        })?;
        let from = &history[j];
        let took = diff(&from.state.lines, &from.next_state.lines);
        let brought = diff(&from.next_state.lines, &from.state.lines);
        let now = &ctx.state.lines;
        let since = diff(now, &from.next_state.lines);
        if j + 1 < history.len() {
            // still where `from` led, and what it did still stands
            let here = brought.iter().filter(|l| now.contains(l)).count();
            let undone = took.iter().any(|l| now.contains(l));
            if 2 * here < brought.len() || undone {
                return None;
            }
        }
        let goes =
            |l: &String| brought.contains(&l) || (since.contains(&l) && r.takes_away(line_kind(l)));
        let gone: Vec<usize> = (0..now.len()).filter(|&i| goes(&now[i])).collect();
        // what comes back takes the place of the first line that goes
        let lines = splice(now, &gone, took.into_iter().cloned().collect());
        let admissible = if same_set(&lines, &from.state.lines) {
            from.state.admissible.clone()
        } else {
            ctx.state.admissible.clone()
        };
        // what arriving there said, the first time
        let feedback = match j.checked_sub(1) {
            Some(k) => history[k].next_state.feedback.clone(),
            None => from.state.feedback.clone(),
        };
        Some(Prediction {
            reasoning: format!(
                "`{}` undid `{}` in {} of {} training episodes where it followed it: what `{}` changed is undone on the state as this episode shows it{}.",
                ctx.action,
                from.action,
                r.back,
                r.seen,
                from.action,
                if j + 1 < history.len() {
                    " (what went with that place since goes with it)"
                } else {
                    ""
                }
            ),
            next_state: Observation {
                lines,
                admissible,
                feedback,
                instruction: ctx.state.instruction.clone(),
            },
            reward: 0.0,
            done: false,
            success: false,
            confidence: r.back as f32 / r.seen as f32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::NativeModel;
    use super::super::tests::episode;
    use super::*;

    const INSTRUCTION: &str = "find the coin";

    /// A room of a free-text world: sentences without ids, and the inventory.
    fn room(name: &str, things: &[&str], carrying: &str) -> Observation {
        let mut lines = vec![format!("text: You are in the {name}")];
        lines.extend(things.iter().map(|t| format!("text: You see a {t}")));
        lines.push(format!("[inventory] inventory: {carrying}"));
        let mut admissible = vec!["move east".to_string(), "move west".to_string()];
        admissible.extend(things.iter().map(|t| format!("take {t}")));
        Observation {
            lines,
            instruction: INSTRUCTION.into(),
            admissible,
            feedback: String::new(),
        }
    }

    fn step(state: &Observation, action: &str, next: &Observation) -> Step {
        crate::model::test_step(state.clone(), action, next.clone())
    }

    /// World `k`: a west room and an east room whose names and contents no other world shares.
    fn world(k: usize) -> (Observation, Observation, Observation) {
        let (west, east) = (format!("room{k}w"), format!("room{k}e"));
        let (table, apple) = (format!("table{k}"), format!("apple{k}"));
        (
            room(&west, &[&table], "nothing"),
            room(&east, &[&apple], "nothing"),
            room(&east, &[], &format!("an {apple}")),
        )
    }

    /// Trained on four worlds: going east and back, and going east, taking the apple and back.
    fn model() -> NativeModel {
        let mut episodes = vec![];
        for k in 0..4 {
            let (west, east, taken) = world(k);
            let mut west_carrying = west.clone();
            *west_carrying.lines.last_mut().unwrap() = taken.lines.last().unwrap().clone();
            episodes.push(episode(vec![
                step(&west, "move east", &east),
                step(&east, "move west", &west),
            ]));
            episodes.push(episode(vec![
                step(&west, "move east", &east),
                step(&east, &format!("take apple{k}"), &taken),
                step(&taken, "move west", &west_carrying),
            ]));
        }
        NativeModel::fit(&episodes)
    }

    fn predict(model: &NativeModel, history: &[Step], action: &str) -> Prediction {
        let task = super::super::super::test_task(INSTRUCTION);
        model.predict_native(&ModelContext {
            task: &task,
            history,
            state: &history.last().unwrap().next_state,
            action,
            retrieved: &[],
        })
    }

    #[test]
    fn going_back_shows_the_room_this_episode_saw_in_a_new_world() {
        let model = model();
        let (west, east, _) = world(9);
        let p = predict(&model, &[step(&west, "move east", &east)], "move west");
        assert_eq!(p.next_state.lines, west.lines, "{}", p.reasoning);
        assert!(p.reasoning.contains("undid `move east`"), "{}", p.reasoning);
        assert_eq!((p.reward, p.done), (0.0, false));
    }

    #[test]
    fn what_changed_since_stays_and_the_room_left_goes() {
        let model = model();
        let (west, east, taken) = world(9);
        let history = [
            step(&west, "move east", &east),
            step(&east, "take apple9", &taken),
        ];
        let p = predict(&model, &history, "move west");
        let mut expected = west.lines.clone();
        *expected.last_mut().unwrap() = "[inventory] inventory: an apple9".into();
        assert_eq!(p.next_state.lines, expected, "{}", p.reasoning);
    }

    #[test]
    fn says_nothing_once_the_agent_went_on_elsewhere() {
        let model = model();
        let (west, east, _) = world(9);
        let (_, far, _) = world(8);
        // `move north` (no pair with `move west` learnt) led on to a third room: the latest
        // change `move west` undoes is the first `move east`, whose room the agent has left
        let history = [
            step(&west, "move east", &east),
            step(&east, "move north", &far),
        ];
        let task = super::super::super::test_task(INSTRUCTION);
        let ctx = ModelContext {
            task: &task,
            history: &history,
            state: &far,
            action: "move west",
            retrieved: &[],
        };
        assert!(model.undoing.predict(&ctx).is_none());
    }

    #[test]
    fn a_pair_that_paid_or_rarely_went_back_is_not_trusted() {
        let (west, east, _) = world(0);
        let mut undoing = Undoing::default();
        for _ in 0..5 {
            undoing.learn(&[
                step(&west, "move east", &east),
                step(&east, "move west", &west),
            ]);
        }
        let trusted = |u: &Undoing| u.pairs[&pair("move east", "move west")].trusted();
        assert!(trusted(&undoing));
        // one return in five that did not restore the room: 5 of 6 < 90%
        undoing.learn(&[
            step(&west, "move east", &east),
            step(&east, "move west", &east),
        ]);
        assert!(!trusted(&undoing));
        let mut paid = Undoing::default();
        for r in [0.0, 0.0, 0.0, 1.0] {
            let mut back = step(&east, "move west", &west);
            back.reward = r;
            paid.learn(&[step(&west, "move east", &east), back]);
        }
        assert!(!trusted(&paid));
    }
}
