//! Rollout collection: task sampling with a train / held-out split, and vectorised stepping of N
//! environments with the native policy.

use crate::PolicyError;
use crate::net::NativeNet;
use crate::text::{Encoded, EpisodeMemory, Featurizer};
use dreamgym_buffer::Observation;
use dreamgym_sim::{Env, TaskSpec};
use rand::{Rng, RngExt};

/// Which task instances a sampler draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// Instances outside the held-out fold (training).
    Train,
    /// The held-out fold: instances whose first observation falls in fold 0 of 5.
    HeldOut,
    /// Every instance.
    Any,
    /// The validation fold: training instances (fold 1 of 5) kept out of training, to tune
    /// settings on without touching the held-out fold.
    Validation,
    /// The training instances beside the validation fold (folds 2 to 4 of 5).
    TrainBesideValidation,
}

impl Split {
    /// Whether an instance of fold `fold` belongs to the split.
    pub fn holds(self, fold: u32) -> bool {
        match self {
            Split::Any => true,
            Split::HeldOut => fold == 0,
            Split::Train => fold != 0,
            Split::Validation => fold == 1,
            Split::TrainBesideValidation => fold >= 2,
        }
    }

    /// Its name in messages and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "training (folds 1-4 of 5)",
            Split::HeldOut => "held-out (fold 0 of 5)",
            Split::Any => "any",
            Split::Validation => {
                "validation (fold 1 of 5, training instances kept out of training)"
            }
            Split::TrainBesideValidation => "training beside validation (folds 2-4 of 5)",
        }
    }
}

/// Number of folds instances are hashed into; fold 0 is held out.
pub const FOLDS: u32 = 5;

/// The fold of an instance, a hash of its first observation (instruction and state lines).
pub fn fold_of(obs: &Observation) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(obs.instruction.as_bytes());
    for l in &obs.lines {
        h.update(b"\n");
        h.update(l.as_bytes());
    }
    h.finalize() % FOLDS
}

/// Whether trajectory `t` plays a training instance (its first observation's fold is not the
/// held-out fold 0): seed data and demonstrations keep only those, so that evaluation on
/// held-out instances stays honest.
pub fn on_training_instance(t: &dreamgym_buffer::Trajectory) -> bool {
    on_split(t, Split::Train)
}

/// Whether `t` was played on an instance of `split` (by its first state).
pub fn on_split(t: &dreamgym_buffer::Trajectory, split: Split) -> bool {
    t.steps
        .first()
        .is_some_and(|s| split.holds(fold_of(&s.state)))
}

/// Draws task instances of one spec from one split.
#[derive(Debug, Clone)]
pub struct TaskSampler {
    /// Which tasks.
    pub spec: TaskSpec,
    /// Which instances.
    pub split: Split,
}

/// Resets tried before a sampler gives up finding an instance of its split.
const MAX_RESET_TRIES: usize = 200;

impl TaskSampler {
    /// Instances of `spec` from the training fold.
    pub fn train(spec: TaskSpec) -> Self {
        Self {
            spec,
            split: Split::Train,
        }
    }

    /// Instances of `spec` from the held-out fold (evaluation).
    pub fn held_out(spec: TaskSpec) -> Self {
        Self {
            spec,
            split: Split::HeldOut,
        }
    }

    /// Instances of `spec` from `split`.
    pub fn of(spec: TaskSpec, split: Split) -> Self {
        Self { spec, split }
    }

    /// Instances of `spec` from either fold.
    pub fn any(spec: TaskSpec) -> Self {
        Self {
            spec,
            split: Split::Any,
        }
    }

    /// Whether an instance with this first observation belongs to the split.
    pub fn accepts(&self, obs: &Observation) -> bool {
        self.split.holds(fold_of(obs))
    }

    /// Resets `env` to an instance of the split, drawing seeds from `rng`; returns the first
    /// observation and the seed that produced it.
    pub fn reset(
        &self,
        env: &mut dyn Env,
        rng: &mut impl Rng,
    ) -> Result<(Observation, u64), PolicyError> {
        self.reset_with(env, rng, None)
    }

    /// Like [`reset`](Self::reset), but with `seed` first when given (GRPO groups replay a seed).
    pub fn reset_with(
        &self,
        env: &mut dyn Env,
        rng: &mut impl Rng,
        seed: Option<u64>,
    ) -> Result<(Observation, u64), PolicyError> {
        if let Some(seed) = seed {
            return Ok((env.reset(&self.spec, seed)?, seed));
        }
        for _ in 0..MAX_RESET_TRIES {
            let seed = rng.random::<u64>() >> 1;
            let obs = env.reset(&self.spec, seed)?;
            if self.accepts(&obs) {
                return Ok((obs, seed));
            }
        }
        Err(PolicyError::NoInstance {
            env: env.id().to_string(),
            split: self.split.name().to_string(),
        })
    }
}

/// One decision taken during a rollout.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The features the decision was made from.
    pub encoded: Encoded,
    /// Index of the chosen action among the admissible ones.
    pub action: usize,
    /// Log-probability of the chosen action under the behaviour policy.
    pub log_prob: f32,
    /// Log-probability under the reference policy (GRPO's KL), else equal to `log_prob`.
    pub ref_log_prob: f32,
    /// The critic's value of the state.
    pub value: f32,
    /// Reward received.
    pub reward: f32,
    /// Whether the return is cut after this step (episode end or end of the collected segment).
    pub cut: bool,
    /// When `cut`: the value to bootstrap from (0 at a terminal state).
    pub next_value: f32,
}

/// Summary of a finished episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeStats {
    /// The task was accomplished.
    pub success: bool,
    /// Sum of rewards.
    pub ret: f32,
    /// Number of steps.
    pub length: usize,
    /// Which env (and so which sampler) it ran in.
    pub env: usize,
    /// It joined a recorded episode mid-way (a branched rollout, [`Env::joined_after`]): its
    /// success says nothing of the task from its beginning.
    pub branched: bool,
}

/// Samples an action index from log-probabilities.
pub fn sample_index(log_probs: &[f32], rng: &mut impl Rng) -> usize {
    let u: f32 = rng.random();
    let mut acc = 0.0;
    for (i, lp) in log_probs.iter().enumerate() {
        acc += lp.exp();
        if u < acc {
            return i;
        }
    }
    log_probs.len().saturating_sub(1)
}

/// The most probable action index.
pub fn greedy_index(log_probs: &[f32]) -> usize {
    let mut best = 0;
    for (i, lp) in log_probs.iter().enumerate() {
        if *lp > log_probs[best] {
            best = i;
        }
    }
    best
}

/// One environment being stepped: its current observation and episode bookkeeping.
struct Slot {
    obs: Observation,
    memory: EpisodeMemory,
    ret: f32,
    length: usize,
}

fn no_actions(env: &dyn Env) -> PolicyError {
    PolicyError::NoActions {
        env: env.id().to_string(),
    }
}

/// Steps N environments for a fixed number of steps each (PPO's rollout phase).
pub struct VecCollector<'a> {
    /// The environments.
    pub envs: &'a mut [Box<dyn Env>],
    /// Where their tasks come from: env `e` draws from `samplers[e % samplers.len()]`.
    pub samplers: &'a [TaskSampler],
    /// The featurizer.
    pub featurizer: &'a Featurizer,
}

/// What a PPO rollout phase returns: one sequence of decisions per env, and finished episodes.
pub struct Segments {
    /// `segments[e]` is env `e`'s decisions in order.
    pub segments: Vec<Vec<Decided>>,
    /// Episodes that finished during the phase.
    pub episodes: Vec<EpisodeStats>,
}

impl VecCollector<'_> {
    /// Resets every env and takes `steps` decisions in each with `net`, sampling from `rng`.
    /// Episodes still running at the end are cut and bootstrapped from the critic.
    pub fn collect(
        &mut self,
        net: &NativeNet,
        steps: usize,
        rng: &mut impl Rng,
    ) -> Result<Segments, PolicyError> {
        let mut slots = Vec::with_capacity(self.envs.len());
        if self.samplers.is_empty() {
            return Err(PolicyError::Config("no task samplers".into()));
        }
        let samplers = self.samplers;
        let sampler_of = |e: usize| &samplers[e % samplers.len()];
        for (e, env) in self.envs.iter_mut().enumerate() {
            let (obs, _) = sampler_of(e).reset(env.as_mut(), rng)?;
            slots.push(Slot {
                obs,
                memory: EpisodeMemory::joined(env.joined_after()),
                ret: 0.0,
                length: 0,
            });
        }
        let mut segments: Vec<Vec<Decided>> = (0..self.envs.len())
            .map(|_| Vec::with_capacity(steps))
            .collect();
        let mut episodes = vec![];
        for t in 0..steps {
            for (e, env) in self.envs.iter_mut().enumerate() {
                let slot = &mut slots[e];
                if slot.obs.admissible.is_empty() {
                    return Err(no_actions(env.as_ref()));
                }
                let encoded = self.featurizer.encode(&slot.obs, &slot.memory);
                let d = net.decide(&encoded.state, &encoded.actions);
                let action = sample_index(&d.log_probs, rng);
                let text = slot.obs.admissible[action].clone();
                let res = env.step(&text)?;
                slot.memory.record(&text);
                slot.ret += res.reward;
                slot.length += 1;
                let ended = res.done || res.truncated;
                let last = t + 1 == steps;
                let next_value = if res.done {
                    0.0
                } else if ended || last {
                    let enc = self.featurizer.encode(&res.observation, &slot.memory);
                    net.value(&enc.state)
                } else {
                    0.0
                };
                segments[e].push(Decided {
                    encoded,
                    action,
                    log_prob: d.log_probs[action],
                    ref_log_prob: d.log_probs[action],
                    value: d.value,
                    reward: res.reward,
                    cut: ended || last,
                    next_value,
                });
                if ended {
                    episodes.push(EpisodeStats {
                        success: res.success,
                        ret: slot.ret,
                        length: slot.length,
                        env: e,
                        branched: env.joined_after().is_some(),
                    });
                    if !last {
                        let (obs, _) = sampler_of(e).reset(env.as_mut(), rng)?;
                        *slot = Slot {
                            obs,
                            memory: EpisodeMemory::joined(env.joined_after()),
                            ret: 0.0,
                            length: 0,
                        };
                    }
                } else {
                    slot.obs = res.observation;
                }
            }
        }
        Ok(Segments { segments, episodes })
    }
}

/// How actions are chosen in [`run_episode`].
#[derive(Clone, Copy)]
pub struct EpisodePolicy<'a> {
    /// The featurizer.
    pub featurizer: &'a Featurizer,
    /// The acting policy.
    pub net: &'a NativeNet,
    /// A reference policy whose log-probabilities are recorded too (GRPO's KL).
    pub reference: Option<&'a NativeNet>,
    /// Take the most probable action instead of sampling.
    pub greedy: bool,
}

/// Runs one whole episode from `first` (the observation after a reset), at most `max_steps`.
pub fn run_episode(
    env: &mut dyn Env,
    first: Observation,
    policy: EpisodePolicy<'_>,
    max_steps: usize,
    rng: &mut impl Rng,
) -> Result<(Vec<Decided>, EpisodeStats), PolicyError> {
    let EpisodePolicy {
        featurizer,
        net,
        reference,
        greedy,
    } = policy;
    let mut obs = first;
    let mut memory = EpisodeMemory::joined(env.joined_after());
    let mut steps = vec![];
    let mut ret = 0.0;
    loop {
        if obs.admissible.is_empty() {
            return Err(no_actions(env));
        }
        let encoded = featurizer.encode(&obs, &memory);
        let d = net.decide(&encoded.state, &encoded.actions);
        let action = if greedy {
            greedy_index(&d.log_probs)
        } else {
            sample_index(&d.log_probs, rng)
        };
        let ref_log_prob = match reference {
            Some(r) => r.decide(&encoded.state, &encoded.actions).log_probs[action],
            None => d.log_probs[action],
        };
        let text = obs.admissible[action].clone();
        let res = env.step(&text)?;
        memory.record(&text);
        ret += res.reward;
        let cap = steps.len() + 1 >= max_steps;
        let ended = res.done || res.truncated || cap;
        steps.push(Decided {
            encoded,
            action,
            log_prob: d.log_probs[action],
            ref_log_prob,
            value: d.value,
            reward: res.reward,
            cut: ended,
            next_value: 0.0,
        });
        if ended {
            let length = steps.len();
            return Ok((
                steps,
                EpisodeStats {
                    success: res.success,
                    ret,
                    length,
                    env: 0,
                    branched: env.joined_after().is_some(),
                },
            ));
        }
        obs = res.observation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sampling_follows_probabilities_and_greedy_takes_the_max() {
        let lp = crate::net::log_softmax_vec(&[0.0, 2.0, -1.0]);
        assert_eq!(greedy_index(&lp), 1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[sample_index(&lp, &mut rng)] += 1;
        }
        let p1 = counts[1] as f32 / 20_000.0;
        assert!((p1 - lp[1].exp()).abs() < 0.02, "{p1}");
        assert!(counts[2] > 0);
    }

    #[test]
    fn folds_split_instances() {
        let mk = |i: usize| Observation {
            lines: vec![format!("line {i}")],
            instruction: "x".into(),
            admissible: vec![],
            feedback: String::new(),
        };
        let held = (0..1000).filter(|i| fold_of(&mk(*i)) == 0).count();
        assert!((150..250).contains(&held), "{held}");
        let train = TaskSampler::train(TaskSpec::default());
        let test = TaskSampler::held_out(TaskSpec::default());
        for i in 0..100 {
            assert_ne!(train.accepts(&mk(i)), test.accepts(&mk(i)));
        }
    }
}
