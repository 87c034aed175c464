//! Recall for partially observable worlds: what a place holds is hidden until the agent gets
//! there, and stays as it was while the agent is away. The native model's recall stages look it
//! up here — in what this episode left behind, and in what real episodes of the same task
//! instance found (the retrieved transitions) — instead of guessing from other instances.
//!
//! - [`RecallSources`]: the places seen, each as the lines shown there.
//! - [`ViewIndex`] (in `views.rs`): what training states looked like, which recall uses to put
//!   recalled lines in order and give a recalled state its admissible actions.
//! - [`recall_place`]: the shape-free stage — a rule's outcome says where an action leads, a
//!   source says what is there.

use super::views::ViewIndex;
use crate::model::lines::{diff, line_id, line_kind, line_subject};
use crate::model::{ModelContext, Prediction};
use dreamgym_buffer::{Observation, Step};
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Where recall looks for what a place holds: first what each step of this episode took away (a
/// place as the agent last left it), then what real episodes of this task instance found on
/// arriving somewhere for the first time in the episode (`ctx.retrieved`: the instance as it
/// began). Lines of retrieved sources about an entity this episode last saw otherwise (an object
/// since picked up or found elsewhere) are not recalled.
pub(super) struct RecallSources<'s> {
    /// Retrieved arrivals (`..retrieved`), then this episode's losses, oldest first.
    pub(super) lost: Vec<Vec<&'s String>>,
    /// For each retrieved arrival, its lines that its episode had not shown before.
    fresh: Vec<Vec<&'s String>>,
    /// How many of `lost` are retrieved.
    pub(super) retrieved: usize,
    /// The latest line this episode showed for each entity id.
    latest: HashMap<&'s str, &'s String>,
    /// The entity ids the state shows.
    here: HashSet<&'s str>,
    /// The entity ids the sources mention.
    mentioned: HashSet<&'s str>,
    /// `lines_back` of the sources asked for so far.
    back: RefCell<FxHashMap<usize, Rc<Vec<String>>>>,
}

impl<'s> RecallSources<'s> {
    /// The sources of a prediction's context; `None` when it has neither history nor
    /// retrieved transitions of its task.
    pub(super) fn new(ctx: &ModelContext<'s>) -> Option<Self> {
        let retrieved: Vec<&Step> = ctx
            .retrieved
            .iter()
            .filter(|s| s.state.instruction == ctx.state.instruction)
            .collect();
        if ctx.history.is_empty() && retrieved.is_empty() {
            return None;
        }
        let mut lost: Vec<Vec<&String>> = Vec::with_capacity(retrieved.len() + ctx.history.len());
        let mut fresh = Vec::with_capacity(retrieved.len());
        let mut shown: HashSet<&String> = HashSet::new();
        let mut prev: Option<&Step> = None;
        for h in &retrieved {
            // a step that does not continue the previous one starts another episode
            if prev.is_none_or(|p| p.next_state != h.state) {
                shown.clear();
                shown.extend(&h.state.lines);
            }
            let gained = diff(&h.next_state.lines, &h.state.lines);
            fresh.push(
                gained
                    .iter()
                    .copied()
                    .filter(|l| shown.insert(*l))
                    .collect(),
            );
            lost.push(gained);
            prev = Some(h);
        }
        lost.extend(
            ctx.history
                .iter()
                .map(|h| diff(&h.state.lines, &h.next_state.lines)),
        );
        // (only retrieved sources are checked against it)
        let mut latest = HashMap::new();
        if !retrieved.is_empty() {
            let shown = ctx
                .history
                .iter()
                .flat_map(|h| h.state.lines.iter())
                .chain(&ctx.state.lines);
            for l in shown {
                if let Some(id) = line_id(l) {
                    latest.insert(id, l);
                }
            }
        }
        let mentioned = lost.iter().flatten().filter_map(|l| line_id(l)).collect();
        Some(RecallSources {
            back: Default::default(),
            mentioned,
            lost,
            fresh,
            retrieved: retrieved.len(),
            latest,
            here: ctx.state.lines.iter().filter_map(|l| line_id(l)).collect(),
        })
    }

    /// The source for a rule's anchor lines: the latest step of this episode that took away
    /// lines about all of them (the rule must fill them as they were then, unless the state
    /// shows them otherwise `now`), else the earliest retrieved arrival that first showed them
    /// all.
    pub(super) fn find(&self, anchors: &[&String], now: &[String]) -> Option<usize> {
        let about = |k: usize| {
            anchors.iter().all(|a| {
                let s = line_subject(a);
                self.lost[k].iter().any(|l| line_subject(l) == s)
            })
        };
        if let Some(k) = (self.retrieved..self.lost.len()).rev().find(|&k| about(k)) {
            // left otherwise: only what the agent sees of it now is newer than that
            let shown = |a: &&String| {
                let s = line_subject(a);
                now.iter().any(|l| line_subject(l) == s)
            };
            let mut otherwise = anchors.iter().filter(|a| !self.lost[k].contains(a));
            match otherwise.next() {
                None => return Some(k),
                Some(a) if !shown(a) || !otherwise.all(shown) => return None,
                Some(_) => {}
            }
        }
        (0..self.retrieved).find(|&k| anchors.iter().all(|a| self.fresh[k].contains(a)))
    }

    /// The source that shows the place some lines are about, however it looked: the latest step
    /// of this episode that took lines about all of them away — unless the state shows some
    /// line just as that step left it (it then says nothing new) —, else the earliest retrieved
    /// arrival that first showed lines about them all, and something the state does not show.
    fn find_about(&self, anchors: &[&String], now: &[String]) -> Option<usize> {
        let subjects: Vec<(&str, &str)> = anchors.iter().map(|a| line_subject(a)).collect();
        let about = |lines: &[&String]| {
            subjects
                .iter()
                .all(|s| lines.iter().any(|l| line_subject(l) == *s))
        };
        let news = |k: usize| !self.lost[k].iter().any(|l| now.contains(l));
        let latest = (self.retrieved..self.lost.len())
            .rev()
            .find(|&k| about(&self.lost[k]));
        if let Some(k) = latest
            && news(k)
        {
            return Some(k);
        }
        (0..self.retrieved).find(|&k| about(&self.fresh[k]) && news(k))
    }

    /// The lines of source `k` that can still be there now: not about an entity the state shows
    /// otherwise (it is here now), nor — for a retrieved source — one this episode last saw
    /// otherwise.
    pub(super) fn lines_there(&self, k: usize) -> impl Iterator<Item = &'s String> + '_ {
        self.lost[k].iter().copied().filter(move |l| {
            let Some(id) = line_id(l) else {
                return true;
            };
            if k >= self.retrieved {
                !self.here.contains(id)
            } else {
                self.latest.get(id).is_none_or(|seen| seen == l)
            }
        })
    }

    /// The lines of source `k` that can still be there now (see `lines_there`), as they will
    /// look on arrival: lines this episode left behind as training showed such lines come back.
    pub(super) fn lines_back(&self, k: usize, views: &ViewIndex) -> Rc<Vec<String>> {
        if let Some(lines) = self.back.borrow().get(&k) {
            return lines.clone();
        }
        let lines: Rc<Vec<String>> = Rc::new(
            self.lines_there(k)
                .map(|l| {
                    if k >= self.retrieved {
                        views.on_return(l)
                    } else {
                        l.clone()
                    }
                })
                .collect(),
        );
        self.back.borrow_mut().insert(k, lines.clone());
        lines
    }

    /// Whether the state shows the entity a line is about.
    fn shows(&self, line: &str) -> bool {
        line_id(line).is_some_and(|id| self.here.contains(id))
    }

    /// Whether some of `lines` is about an entity some source mentions.
    pub(super) fn mentions_any(&self, lines: &[&String]) -> bool {
        lines
            .iter()
            .filter_map(|l| line_id(l))
            .any(|id| self.mentioned.contains(id))
    }

    /// Whether lines are about somewhere else: some of them is about an entity not shown now
    /// (a room; the door the agent came through may be shown from both sides).
    pub(super) fn elsewhere(&self, lines: &[&String]) -> bool {
        lines.iter().any(|l| line_id(l).is_some() && !self.shows(l))
    }

    /// In words, where source `k` comes from.
    pub(super) fn describe(&self, k: usize) -> String {
        match k.checked_sub(self.retrieved) {
            Some(step) => format!("a place left at step {step} of this episode"),
            None => "a place a real episode of this task found on arrival (retrieved)".to_string(),
        }
    }
}

/// Shape-free recall, for moves whose destination no rule of the right shape recalls: `ruled` is
/// the rules' outcome, or memory's from other instances (it says where the action leads and what
/// stays behind); of the lines it adds, those about the place itself (the first added line's
/// entity) are replaced by what a source shows of it (a container as it was left), the objects
/// the source saw there are added however many (lines of kinds such actions bring into view in
/// training, `brings`), and objects the outcome puts there that the source did not see go. Admissible actions are those of
/// a training state with the same lines, else the rules'. `None` when the outcome is no move to
/// somewhere else (nothing stays behind, nothing comes, or what comes is about something the
/// state shows) or no source shows the place.
pub(super) fn recall_place(
    sources: &RecallSources,
    state: &Observation,
    ruled: &Prediction,
    views: &ViewIndex,
    brings: &HashSet<String>,
) -> Option<Prediction> {
    let next = &ruled.next_state;
    let added = diff(&next.lines, &state.lines);
    if added.is_empty() || diff(&state.lines, &next.lines).is_empty() {
        return None;
    }
    if !sources.elsewhere(&added) {
        return None;
    }
    // the place the action leads to: what the first line it adds is about
    let place = line_id(added[0]);
    let own: Vec<&String> = added
        .iter()
        .copied()
        .filter(|a| line_id(a) == place)
        .collect();
    let k = sources.find_about(&own, &state.lines)?;
    // the same place: its first line as it was then (a page of other results is another page)
    if !sources.lost[k].contains(&added[0]) {
        return None;
    }
    let there: Vec<String> = sources
        .lines_back(k, views)
        .iter()
        .filter(|l| added.contains(l) || brings.contains(line_kind(l)))
        .cloned()
        .collect();
    let seen: HashSet<(&str, &str)> = sources.lost[k].iter().map(|l| line_subject(l)).collect();
    // the place itself as the source saw it; of other things there, the outcome's lines where
    // it has one (rules know how things look on arrival), the source's where it has none; what
    // the outcome puts there that the source did not see there (a guess from other instances) goes
    let mut block: Vec<String> = Vec::with_capacity(added.len() + there.len());
    let mut changed = false;
    for a in &added {
        let s = line_subject(a);
        match there.iter().find(|l| line_subject(l) == s) {
            Some(l) if line_id(a) == place && *l != **a => {
                block.push((*l).clone());
                changed = true;
            }
            None if !seen.contains(&s) && !sources.shows(a) => changed = true,
            _ => block.push((*a).clone()),
        }
    }
    let extra: Vec<String> = there
        .iter()
        .filter(|l| !added.iter().any(|a| line_subject(a) == line_subject(l)))
        .map(|l| (*l).clone())
        .collect();
    if !changed && extra.is_empty() {
        return None; // the rules said as much
    }
    let block = views.merge(extra, block);
    let kept: Vec<String> = next
        .lines
        .iter()
        .filter(|l| !added.contains(l))
        .cloned()
        .collect();
    let lines = views.merge(kept, block);
    let admissible = views
        .admissible(&lines)
        .cloned()
        .unwrap_or_else(|| next.admissible.clone());
    Some(Prediction {
        reasoning: format!(
            "{} Recalled what {} showed there: {:?}.",
            ruled.reasoning,
            sources.describe(k),
            there
        ),
        next_state: Observation {
            lines,
            admissible,
            ..next.clone()
        },
        confidence: 0.8,
        ..ruled.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dreamgym_buffer::Task;

    fn obs(lines: &[&str], admissible: &[&str]) -> Observation {
        Observation {
            lines: lines.iter().map(|l| l.to_string()).collect(),
            instruction: "put a mug in/on shelf 1".into(),
            admissible: admissible.iter().map(|l| l.to_string()).collect(),
            feedback: String::new(),
        }
    }

    use crate::model::test_step as step;

    fn task() -> Task {
        crate::model::test_task("put a mug in/on shelf 1")
    }

    const DRAWER: &str = "[drawer_1] location: you are at drawer 1";
    const OPEN: &str = "[drawer_1] container: drawer 1 is open";
    const CLOSED: &str = "[drawer_1] container: drawer 1 is closed";
    const MUG: &str = "[mug_1] item: a mug in/on drawer 1";
    const SHELF: &str = "[shelf_1] location: you are at shelf 1";
    const APPLE: &str = "[apple_1] carried: you are holding the apple";

    /// An episode that opened drawer 1, saw a mug there and walked to shelf 1 leaving it open.
    fn left_open() -> Vec<Step> {
        vec![
            step(
                obs(&[DRAWER, CLOSED], &[]),
                "open drawer 1",
                obs(&[DRAWER, OPEN, MUG], &[]),
            ),
            step(
                obs(&[DRAWER, OPEN, MUG], &[]),
                "go to shelf 1",
                obs(&[SHELF, APPLE], &[]),
            ),
        ]
    }

    fn sources<'a>(
        history: &'a [Step],
        retrieved: &'a [Step],
        state: &'a Observation,
        t: &'a Task,
    ) -> RecallSources<'a> {
        RecallSources::new(&ModelContext {
            task: t,
            history,
            state,
            action: "go to drawer 1",
            retrieved,
        })
        .expect("sources")
    }

    #[test]
    fn a_place_is_recalled_as_the_episode_left_it() {
        let (t, history) = (task(), left_open());
        let state = obs(&[SHELF, APPLE], &[]);
        let s = sources(&history, &[], &state, &t);
        let drawer = DRAWER.to_string();
        let (open, closed) = (OPEN.to_string(), CLOSED.to_string());
        // the step that left drawer 1 shows it open with the mug
        assert_eq!(s.find(&[&drawer, &open], &state.lines), Some(1));
        // a rule that says it is closed is contradicted by that step, not confirmed by an older one
        assert_eq!(s.find(&[&drawer, &closed], &state.lines), None);
        assert_eq!(s.lines_there(1).count(), 3);
        // a rule's outcome that the drawer is closed and empty is corrected, the apple stays in hand
        let ruled = Prediction {
            reasoning: "rule".into(),
            next_state: obs(&[DRAWER, CLOSED, APPLE], &["open drawer 1"]),
            reward: 0.0,
            done: false,
            success: false,
            confidence: 0.5,
        };
        let mut views = ViewIndex::default();
        views.learn(&obs(
            &[DRAWER, OPEN, MUG, APPLE],
            &["close drawer 1", "go to shelf 1"],
        ));
        let brings: HashSet<String> = ["location", "container", "item"].map(String::from).into();
        let p = recall_place(&s, &state, &ruled, &views, &brings).expect("recalled");
        assert_eq!(p.next_state.lines, [DRAWER, OPEN, MUG, APPLE]);
        assert_eq!(p.next_state.admissible, ["close drawer 1", "go to shelf 1"]);
        assert!(
            p.reasoning.contains("step 1 of this episode"),
            "{}",
            p.reasoning
        );
        // nothing to recall for a place no source saw
        let elsewhere = Prediction {
            next_state: obs(
                &["[sinkbasin_1] location: you are at sink basin 1", APPLE],
                &[],
            ),
            ..ruled
        };
        assert!(recall_place(&s, &state, &elsewhere, &views, &brings).is_none());
    }

    #[test]
    fn retrieved_episodes_show_the_instance_as_it_began() {
        let t = task();
        // a real episode of the instance: first arrival at drawer 1 (closed), opened (mug), took
        // the mug, left, came back (open, empty)
        let arrive = step(
            obs(&[SHELF], &[]),
            "go to drawer 1",
            obs(&[DRAWER, CLOSED], &[]),
        );
        let open = step(
            obs(&[DRAWER, CLOSED], &[]),
            "open drawer 1",
            obs(&[DRAWER, OPEN, MUG], &[]),
        );
        let take = step(
            obs(&[DRAWER, OPEN, MUG], &[]),
            "take mug from drawer 1",
            obs(
                &[DRAWER, OPEN, "[mug_1] carried: you are holding the mug"],
                &[],
            ),
        );
        let leave = step(
            take.next_state.clone(),
            "go to shelf 1",
            obs(&[SHELF, "[mug_1] carried: you are holding the mug"], &[]),
        );
        let back = step(
            leave.next_state.clone(),
            "go to drawer 1",
            obs(
                &[DRAWER, OPEN, "[mug_1] carried: you are holding the mug"],
                &[],
            ),
        );
        let retrieved = vec![arrive, open, take, leave, back];
        let state = obs(&[SHELF], &[]);
        let s = sources(&[], &retrieved, &state, &t);
        let (drawer, closed, open) = (DRAWER.to_string(), CLOSED.to_string(), OPEN.to_string());
        // arriving: the first arrival (closed), not the later one (left open by that episode)
        assert_eq!(s.find(&[&drawer, &closed], &state.lines), Some(0));
        assert_eq!(s.find(&[&drawer, &open], &state.lines), None);
        // opening it: what the first opening showed
        let at = obs(&[DRAWER, CLOSED], &[]);
        assert_eq!(s.find(&[&open], &at.lines), Some(1));
        assert_eq!(s.lines_there(1).collect::<Vec<_>>(), [OPEN, MUG]);
        // an entity this episode has seen elsewhere since is not recalled where that one found it
        let moved = obs(&[SHELF, "[mug_1] item: a mug in/on shelf 1"], &[]);
        let s = sources(&[], &retrieved, &moved, &t);
        assert_eq!(s.lines_there(1).collect::<Vec<_>>(), [OPEN]);
    }

    #[test]
    fn a_state_has_the_admissible_actions_its_lines_always_had() {
        let mut views = ViewIndex::default();
        views.learn(&obs(
            &[DRAWER, OPEN, MUG],
            &["take mug from drawer 1", "close drawer 1"],
        ));
        // the same lines in another order are the same state
        views.learn(&obs(
            &[MUG, DRAWER, OPEN],
            &["take mug from drawer 1", "close drawer 1"],
        ));
        let lines: Vec<String> = [OPEN, MUG, DRAWER].map(String::from).into();
        assert_eq!(
            views.admissible(&lines).unwrap(),
            &["take mug from drawer 1", "close drawer 1"]
        );
        // lines seen with two different lists say nothing
        views.learn(&obs(&[SHELF], &["go to drawer 1"]));
        views.learn(&obs(&[SHELF], &["go to drawer 1", "look"]));
        assert!(views.admissible(&[SHELF.to_string()]).is_none());
        assert!(views.admissible(&[DRAWER.to_string()]).is_none());
    }

    #[test]
    fn merged_lines_keep_the_usual_order_of_their_kinds() {
        let mut views = ViewIndex::default();
        views.learn(&obs(
            &[
                "[room_a] room: west",
                "[key_red] carried: key",
                "[ball_x] ball: x",
                "[door_ab] door: d",
            ],
            &[],
        ));
        let merged = views.merge(
            vec!["[key_red] carried: key".into()],
            vec![
                "[room_b] room: middle".into(),
                "[ball_y] ball: y".into(),
                "[door_bc] door: e".into(),
            ],
        );
        assert_eq!(
            merged,
            [
                "[room_b] room: middle",
                "[key_red] carried: key",
                "[ball_y] ball: y",
                "[door_bc] door: e"
            ]
        );
    }
}
