//! What training observations looked like, for states the model assembles itself (recall): the
//! admissible actions that went with each set of state lines, the usual order of line kinds, and
//! how lines look when they come back into view.

use crate::model::lines::{diff, line_id, line_kind, line_subject};
use dreamgym_buffer::{Observation, Step};
use rustc_hash::FxHashMap;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// An order-free fingerprint of a set of lines.
fn fingerprint(lines: &[String]) -> u64 {
    let mut sorted: Vec<&String> = lines.iter().collect();
    sorted.sort_unstable();
    let mut h = rustc_hash::FxHasher::default();
    sorted.hash(&mut h);
    h.finish()
}

/// What training observations looked like: the admissible actions that went with each set of
/// state lines (where it always had the same ones), and where lines of each kind stand in a state (their mean
/// relative position), so recalled lines and the lines that stay are put in the usual order.
#[derive(Default)]
pub(crate) struct ViewIndex {
    admissible: FxHashMap<u64, Option<Vec<String>>>,
    /// Per line kind: the sum of relative positions and the count.
    positions: HashMap<String, (f64, usize)>,
    /// How a line's shape (see `line_rewrite`) looked when it came back into view, by its shape
    /// when it went out of view: counts.
    returns: HashMap<String, HashMap<String, usize>>,
    /// The shapes that come back changed, and how (settled by `finish`).
    changes: HashMap<String, String>,
}

/// Least examples, and share of them, behind a learnt change of a line's look on return.
const RETURN_MIN: usize = 3;
const RETURN_SHARE: f64 = 0.9;

impl ViewIndex {
    /// Record an observation's lines and admissible actions.
    pub(crate) fn learn(&mut self, o: &Observation) {
        // a set of lines seen with two different lists says nothing about its actions
        match self.admissible.entry(fingerprint(&o.lines)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Some(o.admissible.clone()));
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if e.get().as_ref().is_some_and(|a| *a != o.admissible) {
                    e.insert(None);
                }
            }
        }
        let n = o.lines.len().max(2) - 1;
        for (i, l) in o.lines.iter().enumerate() {
            let kind = line_kind(l);
            let at = i as f64 / n as f64;
            match self.positions.get_mut(kind) {
                Some(e) => *e = (e.0 + at, e.1 + 1),
                None => {
                    self.positions.insert(kind.to_string(), (at, 1));
                }
            }
        }
    }

    /// Learn how lines look when they come back into view from an episode: for each line that
    /// went out of view, the line about the same thing that next came back.
    pub(crate) fn learn_returns(&mut self, steps: &[Step]) {
        // a move: some line comes about an entity the state did not show, or goes about one the
        // next state does not show
        let new_entity = |from: &[String], to: &[String]| {
            let ids: HashSet<&str> = from.iter().filter_map(|l| line_id(l)).collect();
            to.iter()
                .filter_map(|l| line_id(l))
                .any(|id| !ids.contains(id))
        };
        let mut gone: HashMap<(&str, &str), &String> = HashMap::new();
        for s in steps {
            let (before, after) = (&s.state.lines, &s.next_state.lines);
            if new_entity(before, after) {
                for l in diff(after, before) {
                    if let Some(was) = gone.remove(&line_subject(l))
                        && let (Some((_, _, from)), Some((_, _, to))) = (
                            super::line_rewrite::parse(was),
                            super::line_rewrite::parse(l),
                        )
                    {
                        *self.returns.entry(from).or_default().entry(to).or_default() += 1;
                    }
                }
            }
            if new_entity(after, before) {
                for l in diff(before, after) {
                    gone.insert(line_subject(l), l);
                }
            }
            for l in &s.next_state.lines {
                gone.remove(&line_subject(l));
            }
        }
    }

    /// A line as it will look when it comes back into view, where training showed lines of its
    /// shape come back changed (an object no longer "right in front of you").
    pub(crate) fn on_return(&self, line: &str) -> String {
        if self.changes.is_empty() {
            return line.to_string();
        }
        let changed = super::line_rewrite::parse(line).and_then(|(id, words, shape)| {
            let to = self.changes.get(&shape)?;
            super::line_rewrite::unmask(to, &words).map(|text| format!("[{id}] {text}"))
        });
        changed.unwrap_or_else(|| line.to_string())
    }

    /// Settle what was learnt: the shapes that come back changed (see `on_return`).
    pub(crate) fn finish(&mut self) {
        self.changes = self
            .returns
            .iter()
            .filter_map(|(from, outcomes)| {
                let total: usize = outcomes.values().sum();
                let (to, &n) = outcomes.iter().max_by_key(|(to, n)| (**n, *to))?;
                (to != from && n >= RETURN_MIN && n as f64 >= RETURN_SHARE * total as f64)
                    .then(|| (from.clone(), to.clone()))
            })
            .collect();
    }

    /// Where lines of this kind usually stand (0 first, 1 last; 0.5 if never seen).
    pub(crate) fn position(&self, line: &str) -> f64 {
        self.positions
            .get(line_kind(line))
            .map_or(0.5, |&(sum, n)| sum / n as f64)
    }

    /// `block` (in its order) with each of `kept` (in theirs) put before the first line of the
    /// block whose kind usually stands later than its own.
    pub(crate) fn merge(&self, kept: Vec<String>, block: Vec<String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(kept.len() + block.len());
        let mut kept = kept.into_iter().peekable();
        for b in block {
            let pb = self.position(&b);
            while let Some(k) = kept.next_if(|k| self.position(k) < pb) {
                out.push(k);
            }
            out.push(b);
        }
        out.extend(kept);
        out
    }

    /// The admissible actions of a state with these lines in training, if any.
    pub(crate) fn admissible(&self, lines: &[String]) -> Option<&Vec<String>> {
        self.admissible.get(&fingerprint(lines))?.as_ref()
    }
}
