//! The trainer's progress state that checkpoints carry: its counters and its RNG's exact
//! position.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Progress counters, saved in checkpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Iterations completed.
    pub iteration: usize,
    /// Environment steps taken.
    pub env_steps: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Optimizer steps taken.
    pub updates: u64,
    /// Iteration where the current learning-rate schedule started (0, or where a run was
    /// extended with [`crate::Trainer::extend`]).
    #[serde(default)]
    pub schedule_start: usize,
}

/// The exact state of a ChaCha8 RNG, serialisable (for checkpoints).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RngState {
    seed: [u8; 32],
    stream: u64,
    word_pos: String,
}

impl RngState {
    /// Captures `rng`'s state.
    pub fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// The RNG in that state (`None` if the position is unreadable).
    pub fn restore(&self) -> Option<ChaCha8Rng> {
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().ok()?);
        Some(rng)
    }
}
