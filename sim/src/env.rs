//! The `Env` trait: what every real environment (scenario engine, bridged env) and every
//! experience model posing as one implements.

use dreamgym_buffer::{Observation, Provenance, Step, Task};
use std::collections::BTreeMap;

/// Which task to reset to; the concrete instance is a function of this and the seed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskSpec {
    /// Task template id (any when `None`).
    pub template: Option<String>,
    /// Difficulty level (any when `None`).
    pub difficulty: Option<u32>,
    /// A task posed in words instead of drawn from the env (a curriculum's LLM-generated task):
    /// only experience-model envs can play it; real envs refuse it.
    pub posed: Option<PosedTask>,
}

/// As a reader says it: "template pickup, level 2", "any task, level 1", "the generated task
/// \"...\"".
impl std::fmt::Display for TaskSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(p) = &self.posed {
            return write!(
                f,
                "the generated task {:?} (from {})",
                p.instruction, p.base
            );
        }
        match &self.template {
            Some(t) => write!(f, "template {t}")?,
            None => f.write_str("any task")?,
        }
        match self.difficulty {
            Some(d) => write!(f, ", level {d}"),
            None => f.write_str(", any level"),
        }
    }
}

/// 64-bit FNV-1a hash of `text`: stable across runs and platforms (file names, generated ids).
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A generated task: a new instruction played from the real initial state of task `base`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PosedTask {
    /// Id of the real task whose initial state the new task starts from.
    pub base: String,
    /// The new task's instruction.
    pub instruction: String,
}

impl TaskSpec {
    /// Whether `task` belongs to the family this spec names (its template and difficulty, where
    /// given; `posed` is not compared).
    pub fn admits(&self, task: &Task) -> bool {
        self.template
            .as_ref()
            .is_none_or(|x| task.params.get("template") == Some(x))
            && self.difficulty.is_none_or(|d| task.difficulty == d)
    }

    /// The error a real env gives for a posed task.
    pub fn refuse_posed(&self, env: &str) -> Result<(), EnvError> {
        match &self.posed {
            Some(p) => Err(EnvError::Task {
                env: env.to_string(),
                message: format!(
                    "the generated task {:?} can only be played in an experience model, not in a real env",
                    p.instruction
                ),
            }),
            None => Ok(()),
        }
    }
}

/// What one step returns.
#[derive(Debug, Clone, PartialEq)]
pub struct StepResult {
    /// The observation after the action.
    pub observation: Observation,
    /// Reward for this step.
    pub reward: f32,
    /// The episode ended (goal reached or terminal failure).
    pub done: bool,
    /// The episode was cut by the step limit.
    pub truncated: bool,
    /// The task was accomplished.
    pub success: bool,
    /// Extra information (e.g. `valid` = whether the action was applicable).
    pub info: BTreeMap<String, String>,
}

impl StepResult {
    /// The real transition this result completes, given the observation the action was taken in.
    pub fn to_step(&self, state: Observation, action: String) -> Step {
        Step {
            state,
            action,
            reward: self.reward,
            next_state: self.observation.clone(),
            done: self.done,
            truncated: self.truncated,
            reasoning: None,
            provenance: Provenance::Real,
            reward_known: true,
        }
    }
}

/// How an expert failed at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpertFault {
    /// It reported an error (BabyAI's bot raising `AssertionError`); the env is still usable and
    /// the episode can go on.
    Raised,
    /// It did not answer within the step timeout; the env was restarted, the episode is over.
    TimedOut,
    /// Its process died or broke the protocol; the env was restarted, the episode is over.
    Crashed,
}

impl ExpertFault {
    /// Whether the episode in flight survived the fault (the env can take the next action).
    pub fn episode_survives(self) -> bool {
        self == ExpertFault::Raised
    }
}

impl std::fmt::Display for ExpertFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExpertFault::Raised => "raised an error",
            ExpertFault::TimedOut => "timed out",
            ExpertFault::Crashed => "crashed",
        })
    }
}

/// Errors of environments.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// `step` before `reset`.
    #[error("{env}: step called before reset")]
    NotReset {
        /// Env id.
        env: String,
    },
    /// `step` after the episode ended.
    #[error("{env}: step called after the episode ended (done or truncated); reset first")]
    EpisodeOver {
        /// Env id.
        env: String,
    },
    /// The task could not be set up.
    #[error("{env}: {message}")]
    Task {
        /// Env id.
        env: String,
        /// What went wrong.
        message: String,
    },
    /// The expert policy has no plan for this task from here (an unsolvable instance, or one
    /// beyond the planner's budget).
    #[error("{env}: the expert found no plan for task {task} ({instruction}) after {steps} steps")]
    NoPlan {
        /// Env id.
        env: String,
        /// Task id.
        task: String,
        /// The task's instruction.
        instruction: String,
        /// Steps taken before the expert gave up.
        steps: usize,
    },
    /// The expert failed while asked for an action: it raised an error, did not answer in time,
    /// or its process died. Collection counts it by [`ExpertFault`] and goes on (see
    /// `policy::collect_episode_limited`); the message says what happened.
    #[error("{env}: the expert {fault} ({message})")]
    Expert {
        /// Env id.
        env: String,
        /// Which kind of failure.
        fault: ExpertFault,
        /// What the env reported.
        message: String,
    },
    /// Anything else (I/O, protocol, ...).
    #[error("{env}: {message}")]
    Other {
        /// Env id.
        env: String,
        /// What went wrong.
        message: String,
    },
}

/// A (real or simulated) environment with a textual abstract state.
pub trait Env: Send {
    /// Stable id, e.g. `scenario:scenarios/household.ron`.
    fn id(&self) -> &str;
    /// Start an episode of a task chosen by `spec` and `seed`; returns the first observation.
    fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError>;
    /// Take an action (its text). Inadmissible actions fail cleanly: state unchanged, reward 0.
    fn step(&mut self, action: &str) -> Result<StepResult, EnvError>;
    /// The task of the current episode.
    fn task(&self) -> Option<&Task>;
    /// The expert's action in the current state, where the env has an expert.
    fn expert_action(&mut self) -> Result<Option<String>, EnvError> {
        Ok(None)
    }
    /// Where the episode in play joined a recorded episode mid-way (a branched rollout of an
    /// experience model, [`crate::model::branch`]): the actions taken before the agent joined,
    /// which its memory holds as if it had taken them; `None` where the episode started at its
    /// task's beginning (every real env).
    fn joined_after(&self) -> Option<&[String]> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{PosedTask, TaskSpec};

    #[test]
    fn a_spec_reads_as_words_not_as_a_type() {
        let spec = TaskSpec {
            template: Some("pickup".into()),
            difficulty: Some(2),
            posed: None,
        };
        assert_eq!(spec.to_string(), "template pickup, level 2");
        assert_eq!(TaskSpec::default().to_string(), "any task, any level");
        let posed = TaskSpec {
            posed: Some(PosedTask {
                base: "kd/pickup/1".into(),
                instruction: "pick up the red key".into(),
            }),
            ..TaskSpec::default()
        };
        assert_eq!(
            posed.to_string(),
            "the generated task \"pick up the red key\" (from kd/pickup/1)"
        );
    }
}
