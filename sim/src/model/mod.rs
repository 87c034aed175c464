//! Experience models: predict the next state, reward and `done` for an action, with a reasoning
//! trace, instead of running the real environment.

pub mod env;
pub mod fidelity;
pub mod native;
pub mod prompt;

use dreamgym_buffer::{Observation, Step, Task};

/// Everything a model sees for one prediction.
#[derive(Debug, Clone, Copy)]
pub struct ModelContext<'a> {
    /// The task.
    pub task: &'a Task,
    /// The previous steps of the episode (a window, oldest first).
    pub history: &'a [Step],
    /// The current state.
    pub state: &'a Observation,
    /// The action to predict the outcome of.
    pub action: &'a str,
    /// Similar transitions retrieved from the replay buffer (may be empty).
    pub retrieved: &'a [Step],
}

/// A model's prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Why: the evidence and the rule used, readable.
    pub reasoning: String,
    /// The predicted next observation.
    pub next_state: Observation,
    /// Predicted reward.
    pub reward: f32,
    /// Predicted end of episode.
    pub done: bool,
    /// Predicted task success.
    pub success: bool,
    /// How sure the model is, in [0, 1].
    pub confidence: f32,
}

/// A model of the environment's dynamics and rewards.
pub trait ExperienceModel: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &str;
    /// Predict one transition.
    fn predict(&self, ctx: &ModelContext) -> Prediction;
    /// Predict many transitions (models may do this faster than one by one).
    fn predict_batch(&self, ctxs: &[ModelContext]) -> Vec<Prediction> {
        ctxs.iter().map(|c| self.predict(c)).collect()
    }
}
