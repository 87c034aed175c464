//! Exact memory: outcomes keyed by a fingerprint of the (instruction, state, action) situation,
//! and next observations seen for a (state, action).

use super::*;

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

/// A recorded outcome: next observation, reward, done, how often.
pub(super) type Outcome = (Observation, f32, bool, usize);

/// A next observation seen for a (state, action): whether it never paid or ended, how often.
pub(super) type SeenNext = (Observation, bool, usize);

/// Counts `s`'s next observation (without the instruction, which other tasks differ in) among
/// those seen for its state and action; `neutral`: the step neither paid nor ended the episode.
pub(super) fn record_next(seen: &mut Vec<SeenNext>, s: &Step, neutral: bool) {
    let next = Observation {
        instruction: String::new(),
        ..s.next_state.clone()
    };
    match seen.iter_mut().find(|o| o.0 == next) {
        Some(o) => {
            o.1 &= neutral;
            o.2 += 1;
        }
        None => seen.push((next, neutral, 1)),
    }
}

/// The next observation seen most often, and how many were seen in all (`seen` is never empty:
/// entries are made by [`record_next`]).
pub(super) fn most_seen(seen: &[SeenNext]) -> (&SeenNext, usize) {
    let total = seen.iter().map(|o| o.2).sum();
    (seen.iter().max_by_key(|o| o.2).expect("non-empty"), total)
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
            ..best.0.clone()
        },
        reward: 0.0,
        done: false,
        success: false,
        confidence,
    }
}
