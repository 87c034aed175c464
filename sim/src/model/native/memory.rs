//! Exact memory: outcomes keyed by a fingerprint of the (instruction, state, action) situation,
//! and next observations seen for a (state, action).

use crate::model::{ModelContext, Prediction};
use dreamgym_buffer::{Observation, Step};
/// A 64-bit fingerprint of an (instruction, state lines, action) situation: memory is keyed by it
/// so a lookup needs no copies (a collision among n keys has probability about n²/2⁶⁵).
pub(super) fn fingerprint(instruction: Option<&str>, lines: &[String], action: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    instruction.hash(&mut h);
    lines.hash(&mut h);
    action.hash(&mut h);
    h.finish()
}

/// An outcome remembered for an (instruction, state, action).
#[derive(Debug, Clone)]
pub(super) struct Remembered {
    /// The next observation.
    pub(super) next: Observation,
    /// The reward.
    pub(super) reward: f32,
    /// Whether the episode ended.
    pub(super) done: bool,
    /// How often this outcome followed.
    pub(super) count: usize,
}

/// A next observation seen for a (state, action), under any instruction.
#[derive(Debug, Clone)]
pub(super) struct SeenNext {
    /// The next observation (without the instruction).
    pub(super) next: Observation,
    /// Whether it never paid a reward or ended an episode.
    pub(super) neutral: bool,
    /// How often it followed.
    pub(super) count: usize,
}

/// Counts `s`'s next observation (without the instruction, which other tasks differ in) among
/// those seen for its state and action; `neutral`: the step neither paid nor ended the episode.
pub(super) fn record_next(seen: &mut Vec<SeenNext>, s: &Step, neutral: bool) {
    let next = Observation {
        instruction: String::new(),
        ..s.next_state.clone()
    };
    match seen.iter_mut().find(|o| o.next == next) {
        Some(o) => {
            o.neutral &= neutral;
            o.count += 1;
        }
        None => seen.push(SeenNext {
            next,
            neutral,
            count: 1,
        }),
    }
}

/// The next observation seen most often, and how many were seen in all (`seen` is never empty:
/// entries are made by [`record_next`]).
pub(super) fn most_seen(seen: &[SeenNext]) -> (&SeenNext, usize) {
    let total = seen.iter().map(|o| o.count).sum();
    (
        seen.iter().max_by_key(|o| o.count).expect("non-empty"),
        total,
    )
}

/// A prediction of a remembered next observation, with this task's instruction, no reward and
/// not done.
pub(super) fn seen_prediction(
    ctx: &ModelContext,
    best: &SeenNext,
    reasoning: String,
    confidence: f32,
) -> Prediction {
    Prediction {
        reasoning,
        next_state: Observation {
            instruction: ctx.state.instruction.clone(),
            ..best.next.clone()
        },
        reward: 0.0,
        done: false,
        success: false,
        confidence,
    }
}
