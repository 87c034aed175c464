//! Experience records: the plain data that flows through dreamgym.
//!
//! A [`Trajectory`] is one episode of an agent in an environment: the [`Task`] it was given and the
//! [`Step`]s it took. Each step holds the abstract textual state before and after the action
//! ([`Observation`]), the reward, the episode flags, an optional reasoning trace (written by an
//! experience model) and the [`Provenance`] (real environment or synthetic).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a piece of experience came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Produced by a real environment (the scenario engine or a bridged env).
    #[default]
    Real,
    /// Produced by an experience model.
    Synthetic,
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Provenance::Real => "real",
            Provenance::Synthetic => "synthetic",
        })
    }
}

/// How a task came to exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TaskOrigin {
    /// A task instance drawn from the environment's own task distribution.
    #[default]
    Seed,
    /// A variant generated (e.g. by the curriculum) from another task.
    GeneratedFrom {
        /// Id of the task this one was derived from.
        parent: String,
    },
}

/// A task instance: what the agent is asked to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Stable identifier of this instance (e.g. `household/heat_place/L2/s17`).
    pub id: String,
    /// Natural-language instruction shown to the agent.
    pub instruction: String,
    /// Parameters the instance was generated with (template variables, seed, knobs).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Difficulty level (1 = easiest).
    #[serde(default)]
    pub difficulty: u32,
    /// Whether the task is a seed task or generated from another.
    #[serde(default)]
    pub origin: TaskOrigin,
}

/// The abstract textual state an agent sees (DreamGym's element list).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Observation {
    /// Ordered state lines, one element or fact each, `[id] kind: text`.
    pub lines: Vec<String>,
    /// The task instruction.
    pub instruction: String,
    /// Actions the environment accepts in this state.
    pub admissible: Vec<String>,
    /// Feedback on the last action (e.g. a failure message); empty at reset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub feedback: String,
}

impl Observation {
    /// The state lines joined with newlines: the text an embedder or a model reads.
    pub fn state_text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Whether an episode-ending `reward` counts as a success: the episode is done and paid the
/// full reward of 1 (with float slack). The one rule every crate uses (the native model,
/// fidelity, SFT export, ADP import).
pub fn is_success(done: bool, reward: f32) -> bool {
    done && reward >= 0.999
}

/// One transition: state, action, reward, next state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Observation before the action.
    pub state: Observation,
    /// The action taken (its text).
    pub action: String,
    /// Reward received for this step.
    pub reward: f32,
    /// Observation after the action.
    pub next_state: Observation,
    /// The episode ended (success or terminal failure).
    pub done: bool,
    /// The episode was cut by a step limit, not ended by the environment.
    #[serde(default)]
    pub truncated: bool,
    /// Reasoning trace of the experience model that predicted this step (synthetic steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Where the step came from.
    #[serde(default)]
    pub provenance: Provenance,
    /// Whether `reward` was observed. Imported data that states no reward (ADP trajectories
    /// without `reward` fields) carries `false` and `reward` 0: such a step teaches dynamics,
    /// never rewards, and is left out of reward fitting, reward accuracy and success counts.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub reward_known: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// How an episode ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The task was accomplished.
    pub success: bool,
    /// Sum of rewards.
    pub total_reward: f32,
    /// Number of steps taken.
    pub length: u32,
    /// The episode was cut by the step limit.
    pub truncated: bool,
}

/// One episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// The task the agent was given.
    pub task: Task,
    /// Environment id, e.g. `scenario:scenarios/household.ron`.
    pub env_id: String,
    /// Seed the environment was reset with.
    pub seed: u64,
    /// Where the episode came from.
    pub provenance: Provenance,
    /// Name of the behaviour policy that acted (e.g. `expert`, `random`, `noisy-expert:0.3`).
    #[serde(default)]
    pub policy: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// How it ended.
    pub outcome: Outcome,
}

impl Trajectory {
    /// The first reward that is not a finite number, as `(field, value)`: JSON numbers such as
    /// `1e39` parse as infinity in an f32, and a record holding one could be written but never
    /// read back, so every boundary refuses them.
    pub fn non_finite(&self) -> Option<(String, f32)> {
        self.steps
            .iter()
            .enumerate()
            .find(|(_, s)| !s.reward.is_finite())
            .map(|(i, s)| (format!("steps[{i}].reward"), s.reward))
            .or_else(|| {
                (!self.outcome.total_reward.is_finite()).then(|| {
                    (
                        "outcome.total_reward".to_string(),
                        self.outcome.total_reward,
                    )
                })
            })
    }

    /// Whether every step's reward was observed (false for imported data without rewards, whose
    /// `outcome.success` then says nothing).
    pub fn rewards_known(&self) -> bool {
        self.steps.iter().all(|s| s.reward_known)
    }

    /// Recompute the outcome from the steps (used by writers; readers check consistency).
    pub fn outcome_from_steps(steps: &[Step], success: bool) -> Outcome {
        Outcome {
            success,
            total_reward: steps.iter().map(|s| s.reward).sum(),
            length: steps.len() as u32,
            truncated: steps.last().is_some_and(|s| s.truncated),
        }
    }
}
