//! Behaviour policies for offline data (expert, random, epsilon-noisy expert) and episode collection.

use crate::env::{Env, EnvError, ExpertFault, TaskSpec};
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

/// Expert failures met while collecting, by kind (see [`ExpertFault`]), and the task instances
/// given up because of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExpertFaults {
    /// Expert calls that reported an error (the noisy expert took a random action instead).
    pub raised: usize,
    /// Expert calls that did not answer in time (the env was restarted).
    pub timed_out: usize,
    /// Expert calls after which the env's process died or broke the protocol (restarted).
    pub crashed: usize,
    /// Task instances that met at least one fault (abandoned or played on).
    pub faulty: usize,
    /// Task instances given up because of a fault (any fault of the pure expert; a restart for
    /// the noisy one): not collected, another instance is drawn where the collector can.
    pub abandoned: usize,
    /// Task instances the collector started (abandoned, skipped for no plan, or collected).
    pub attempted: usize,
}

impl ExpertFaults {
    /// Count one fault.
    pub fn count(&mut self, fault: ExpertFault) {
        match fault {
            ExpertFault::Raised => self.raised += 1,
            ExpertFault::TimedOut => self.timed_out += 1,
            ExpertFault::Crashed => self.crashed += 1,
        }
    }

    /// Faults of every kind.
    pub fn total(&self) -> usize {
        self.raised + self.timed_out + self.crashed
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ExpertFaults) {
        self.raised += other.raised;
        self.timed_out += other.timed_out;
        self.crashed += other.crashed;
        self.faulty += other.faulty;
        self.abandoned += other.abandoned;
        self.attempted += other.attempted;
    }

    /// Counts as one line: "3 raised an error, 1 timed out, 0 crashed; 4 of 40 instances
    /// affected, 2 abandoned".
    pub fn describe(&self) -> String {
        format!(
            "{} raised an error, {} timed out, {} crashed; {} of {} instances affected, {} abandoned",
            self.raised, self.timed_out, self.crashed, self.faulty, self.attempted, self.abandoned
        )
    }

    /// The error once more than `max_share` of the instances tried (at least
    /// [`Self::MIN_ATTEMPTS`] of them, so that one early failure does not stop a run) had a fault
    /// of the expert: either its instance was abandoned or (noisy expert) a step turned random.
    /// A `finished` collection is judged however few instances it drew. `last` is the latest
    /// fault's text, so that the error names what went wrong.
    pub fn check(
        &self,
        max_share: f64,
        env: &str,
        last: &str,
        finished: bool,
    ) -> Result<(), String> {
        let faulty = self.faulty;
        let share = faulty as f64 / self.attempted.max(1) as f64;
        if (finished || self.attempted >= Self::MIN_ATTEMPTS) && share > max_share {
            return Err(format!(
                "{env}: the expert failed on {faulty} of {} task instances ({:.0}% > max_expert_failure_share {:.0}%): {}; the latest: {last}",
                self.attempted,
                100.0 * share,
                100.0 * max_share,
                self.describe()
            ));
        }
        Ok(())
    }

    /// Instances tried before [`Self::check`] judges the share.
    pub const MIN_ATTEMPTS: usize = 10;
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
    collect_episode_limited(
        env,
        spec,
        seed,
        policy,
        rng,
        MAX_EPISODE_STEPS,
        &mut ExpertFaults::default(),
    )
}

/// [`collect_episode`] cut at `max_steps` (at least 1) steps: the last step of an episode the env
/// did not end by then is marked truncated.
///
/// Expert faults ([`EnvError::Expert`]) are counted in `faults` (by kind, and `faulty` once per
/// episode): where the env survived the fault, the noisy expert takes a random admissible action
/// for that step and the episode goes on; the pure expert, or any fault that restarted the env,
/// gives the episode up and returns the error (the caller counts the instance as abandoned and
/// draws the next). `faults.attempted` and `faults.abandoned` are the caller's to count.
pub fn collect_episode_limited(
    env: &mut dyn Env,
    spec: &TaskSpec,
    seed: u64,
    policy: BehaviourPolicy,
    rng: &mut impl rand::Rng,
    max_steps: usize,
    faults: &mut ExpertFaults,
) -> Result<Trajectory, EnvError> {
    let max_steps = max_steps.max(1);
    let mut obs = env.reset(spec, seed)?;
    let task = env.task().cloned().ok_or_else(|| EnvError::Other {
        env: env.id().to_string(),
        message: "env gave no task after reset".into(),
    })?;
    let mut steps = vec![];
    let mut success = false;
    let mut faulted = false;
    // counts a fault; whether the episode may go on with a random action instead
    let mut fault = |e: &EnvError| -> bool {
        match e {
            EnvError::Expert { fault, .. } => {
                faults.count(*fault);
                if !faulted {
                    faulted = true;
                    faults.faulty += 1;
                }
                fault.episode_survives() && matches!(policy, BehaviourPolicy::NoisyExpert { .. })
            }
            _ => false,
        }
    };
    loop {
        let random =
            |rng: &mut dyn rand::Rng, obs: &dreamgym_buffer::Observation| -> Option<String> {
                (!obs.admissible.is_empty())
                    .then(|| obs.admissible[rng.random_range(0..obs.admissible.len())].clone())
            };
        let action = match policy {
            BehaviourPolicy::Random => random(rng, &obs),
            BehaviourPolicy::Expert => match env.expert_action() {
                Ok(Some(a)) => Some(a),
                Ok(None) => {
                    return Err(EnvError::NoPlan {
                        env: env.id().to_string(),
                        task: task.id.clone(),
                        instruction: task.instruction.clone(),
                        steps: steps.len(),
                    });
                }
                Err(e) => {
                    fault(&e);
                    return Err(e);
                }
            },
            BehaviourPolicy::NoisyExpert { epsilon } => {
                if rng.random_bool(epsilon) {
                    random(rng, &obs)
                } else {
                    match env.expert_action() {
                        Ok(a) => a.or_else(|| random(rng, &obs)),
                        Err(e) if fault(&e) => random(rng, &obs),
                        Err(e) => return Err(e),
                    }
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
