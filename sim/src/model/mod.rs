//! Experience models: predict the next state, reward and `done` for an action, with a reasoning
//! trace, instead of running the real environment.

pub mod branch;
pub mod ensemble;
pub mod env;
pub mod fidelity;
mod lines;
pub mod llm;
pub mod native;
pub mod retrieval;
mod words;
pub mod world;

pub use words::words;

use dreamgym_buffer::{Observation, Step, Task, Trajectory};

/// Everything a model sees for one prediction.
#[derive(Debug, Clone, Copy)]
pub struct ModelContext<'a> {
    /// The task.
    pub task: &'a Task,
    /// The previous steps of the episode, oldest first (`ModelEnv` gives the whole episode; a
    /// model may use fewer, as the LLM prompt does).
    pub history: &'a [Step],
    /// The current state.
    pub state: &'a Observation,
    /// The action to predict the outcome of.
    pub action: &'a str,
    /// Similar transitions retrieved from the replay buffer (may be empty).
    pub retrieved: &'a [Step],
}

impl<'a> ModelContext<'a> {
    /// The context of step `i` of a real trajectory: its state and action, all earlier steps as
    /// history, nothing retrieved.
    pub fn at_step(t: &'a Trajectory, i: usize) -> Self {
        let s = &t.steps[i];
        ModelContext {
            task: &t.task,
            history: &t.steps[..i],
            state: &s.state,
            action: &s.action,
            retrieved: &[],
        }
    }
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

/// Why a model gave no prediction. A rejected reply (cut at the token limit, invalid JSON) is an
/// error, never a prediction: it must not reach a replay buffer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The model is misconfigured (e.g. no server URL).
    #[error("experience model configuration: {0}")]
    Config(String),
    /// The server could not be reached or answered with an error status.
    #[error("experience model server: {0}")]
    Server(String),
    /// Every attempt was cut at the token limit.
    #[error("experience model reply cut at max_tokens in all {attempts} attempt(s)")]
    Truncated {
        /// Attempts made.
        attempts: u32,
    },
    /// Every attempt gave a reply that is not the expected JSON.
    #[error("experience model reply rejected after {attempts} attempt(s): {message}")]
    InvalidReply {
        /// Attempts made.
        attempts: u32,
        /// What was wrong with the last one.
        message: String,
    },
}

/// A real step for unit tests: `state`, `action`, `next`, reward 0, not done.
#[cfg(test)]
pub(crate) fn test_step(state: Observation, action: &str, next: Observation) -> Step {
    Step {
        state,
        action: action.into(),
        reward: 0.0,
        next_state: next,
        done: false,
        truncated: false,
        reasoning: None,
        provenance: dreamgym_buffer::Provenance::Real,
        reward_known: true,
    }
}

/// An observation for unit tests: `lines` under `instruction`, no admissible actions listed.
#[cfg(test)]
pub(crate) fn test_observation(lines: &[&str], instruction: &str) -> Observation {
    Observation {
        lines: lines.iter().map(|l| l.to_string()).collect(),
        instruction: instruction.into(),
        admissible: vec![],
        feedback: String::new(),
    }
}

/// A task for unit tests: id `t`, level 1, the given instruction.
#[cfg(test)]
pub(crate) fn test_task(instruction: &str) -> Task {
    Task {
        id: "t".into(),
        instruction: instruction.into(),
        params: Default::default(),
        difficulty: 1,
        origin: Default::default(),
    }
}

/// A model of the environment's dynamics and rewards.
pub trait ExperienceModel: Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &str;
    /// Predict one transition.
    fn predict(&self, ctx: &ModelContext) -> Result<Prediction, ModelError>;
    /// Predict many transitions (models may do this faster than one by one).
    fn predict_batch(&self, ctxs: &[ModelContext]) -> Vec<Result<Prediction, ModelError>> {
        ctxs.iter().map(|c| self.predict(c)).collect()
    }
}
