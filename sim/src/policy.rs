//! Behaviour policies for offline data (expert, random, epsilon-noisy expert) and episode collection.

use crate::env::{Env, EnvError, TaskSpec};
use dreamgym_buffer::{Provenance, Trajectory};
use rand::RngExt;
use std::str::FromStr;

/// A policy that generates offline trajectories.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BehaviourPolicy {
    /// Follow the env's expert (for scenarios: the generic planner); an episode where the expert
    /// finds no plan is an error, never silently filled with random actions.
    Expert,
    /// Uniform over the admissible actions.
    Random,
    /// Random admissible action with probability `epsilon`, else the expert's (random as well where
    /// the noise has led to a state from which the expert finds no plan).
    NoisyExpert {
        /// Probability of a random action.
        epsilon: f64,
    },
}

impl std::fmt::Display for BehaviourPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BehaviourPolicy::Expert => f.write_str("expert"),
            BehaviourPolicy::Random => f.write_str("random"),
            BehaviourPolicy::NoisyExpert { epsilon } => write!(f, "noisy-expert:{epsilon}"),
        }
    }
}

impl FromStr for BehaviourPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "expert" => Ok(Self::Expert),
            "random" => Ok(Self::Random),
            "noisy-expert" | "noisy" => Ok(Self::NoisyExpert { epsilon: 0.3 }),
            _ => match s
                .strip_prefix("noisy-expert:")
                .or_else(|| s.strip_prefix("noisy:"))
            {
                Some(e) => match e.parse::<f64>() {
                    Ok(eps) if (0.0..=1.0).contains(&eps) => Ok(Self::NoisyExpert { epsilon: eps }),
                    _ => Err(format!(
                        "bad epsilon `{e}` in `{s}`: expected a number in [0, 1]"
                    )),
                },
                None => Err(format!(
                    "unknown policy `{s}`: expected expert, random, noisy-expert or noisy-expert:EPS"
                )),
            },
        }
    }
}

/// The most steps [`collect_episode`] takes in one episode when the env sets no lower limit: a
/// bridged env that never reports `done` would otherwise run forever. The scenarios' own limits
/// are far lower (e.g. 50), so their episodes are unchanged.
pub const MAX_EPISODE_STEPS: usize = 1000;

/// Run one episode of `policy` in `env` and return it as a real trajectory (cut at
/// [`MAX_EPISODE_STEPS`] if the env never ends it).
pub fn collect_episode(
    env: &mut dyn Env,
    spec: &TaskSpec,
    seed: u64,
    policy: BehaviourPolicy,
    rng: &mut impl rand::Rng,
) -> Result<Trajectory, EnvError> {
    collect_episode_limited(env, spec, seed, policy, rng, MAX_EPISODE_STEPS)
}

/// [`collect_episode`] cut at `max_steps` (at least 1) steps: the last step of an episode the env
/// did not end by then is marked truncated.
pub fn collect_episode_limited(
    env: &mut dyn Env,
    spec: &TaskSpec,
    seed: u64,
    policy: BehaviourPolicy,
    rng: &mut impl rand::Rng,
    max_steps: usize,
) -> Result<Trajectory, EnvError> {
    let max_steps = max_steps.max(1);
    let mut obs = env.reset(spec, seed)?;
    let task = env.task().cloned().ok_or_else(|| EnvError::Other {
        env: env.id().to_string(),
        message: "env gave no task after reset".into(),
    })?;
    let mut steps = vec![];
    let mut success = false;
    loop {
        let random =
            |rng: &mut dyn rand::Rng, obs: &dreamgym_buffer::Observation| -> Option<String> {
                (!obs.admissible.is_empty())
                    .then(|| obs.admissible[rng.random_range(0..obs.admissible.len())].clone())
            };
        let action = match policy {
            BehaviourPolicy::Random => random(rng, &obs),
            BehaviourPolicy::Expert => match env.expert_action()? {
                Some(a) => Some(a),
                None => {
                    return Err(EnvError::NoPlan {
                        env: env.id().to_string(),
                        task: task.id.clone(),
                        instruction: task.instruction.clone(),
                        steps: steps.len(),
                    });
                }
            },
            BehaviourPolicy::NoisyExpert { epsilon } => {
                if rng.random_bool(epsilon) {
                    random(rng, &obs)
                } else {
                    env.expert_action()?.or_else(|| random(rng, &obs))
                }
            }
        };
        let Some(action) = action else {
            return Err(EnvError::Other {
                env: env.id().to_string(),
                message: format!("no admissible action in task {}", task.id),
            });
        };
        let mut r = env.step(&action)?;
        success |= r.success;
        // an env that never ends is cut here, as a step limit would
        r.truncated |= !r.done && steps.len() + 1 >= max_steps;
        let end = r.done || r.truncated;
        steps.push(r.to_step(obs, action));
        obs = r.observation;
        if end {
            break;
        }
    }
    Ok(Trajectory {
        outcome: Trajectory::outcome_from_steps(&steps, success),
        task,
        env_id: env.id().to_string(),
        seed,
        provenance: Provenance::Real,
        policy: policy.to_string(),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Env, EnvError, StepResult, TaskSpec};
    use dreamgym_buffer::{Observation, Task};

    /// A bridged env gone wrong: it never reports `done`.
    struct Endless(Option<Task>);

    impl Env for Endless {
        fn id(&self) -> &str {
            "bridge:endless"
        }
        fn reset(&mut self, _: &TaskSpec, _: u64) -> Result<Observation, EnvError> {
            self.0 = Some(Task {
                id: "endless".into(),
                instruction: "walk".into(),
                params: Default::default(),
                difficulty: 1,
                origin: Default::default(),
            });
            Ok(Observation {
                lines: vec!["[here] place: a corridor".into()],
                instruction: "walk".into(),
                admissible: vec!["walk on".into()],
                feedback: String::new(),
            })
        }
        fn step(&mut self, _: &str) -> Result<StepResult, EnvError> {
            Ok(StepResult {
                observation: self.reset(&TaskSpec::default(), 0)?,
                reward: 0.0,
                done: false,
                truncated: false,
                success: false,
                info: Default::default(),
            })
        }
        fn task(&self) -> Option<&Task> {
            self.0.as_ref()
        }
    }

    #[test]
    fn an_env_that_never_ends_is_cut_at_the_step_limit() {
        let mut env = Endless(None);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let t = collect_episode(
            &mut env,
            &TaskSpec::default(),
            1,
            BehaviourPolicy::Random,
            &mut rng,
        )
        .unwrap();
        assert_eq!(t.steps.len(), MAX_EPISODE_STEPS);
        assert!(t.outcome.truncated && t.steps.last().unwrap().truncated);
        assert!(!t.steps[..MAX_EPISODE_STEPS - 1].iter().any(|s| s.truncated));
    }
}
