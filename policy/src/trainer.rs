//! The learner: a text policy, its optimizer, RNG and counters; one `iterate` call is a rollout
//! phase in the given environments and an update phase (PPO or GRPO). Environments are passed per
//! call, so the same learner can train in an experience model and then in the real env (S2R).

use crate::PolicyError;
use crate::backend::{BackendKind, SelectedDevice};
use crate::config::{Algo, TrainConfig};
use crate::loss::{EpochPlan, Sample, bc_step, mean_stats, optimise, run_epochs};
use crate::metrics::IterationMetrics;
use crate::net::{NativeNet, PolicyNet};
use crate::rollout::{Decided, EpisodePolicy, EpisodeStats, TaskSampler, run_episode};
use crate::shape::NetShape;
use crate::state::Counters;
use crate::text::EpisodeMemory;
use crate::text::{Featurizer, Vocab};
use burn::optim::ModuleOptimizer;
use burn::tensor::Device;
use dreamgym_buffer::{Observation, Trajectory};
use dreamgym_sim::Env;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Evaluation result over a number of episodes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Episodes run.
    pub episodes: usize,
    /// Successes.
    pub successes: usize,
    /// Success rate.
    pub success: f32,
    /// Mean return.
    pub mean_return: f32,
    /// Mean episode length.
    pub mean_length: f32,
}

/// Builds a vocabulary from random-policy episodes on `sampler`'s tasks (deterministic in `seed`).
pub fn vocab_from_env(
    env: &mut dyn Env,
    sampler: &TaskSampler,
    cfg: &TrainConfig,
    seed: u64,
) -> Result<Vocab, PolicyError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_70c0);
    let mut seen: Vec<Observation> = vec![];
    for _ in 0..cfg.vocab_episodes {
        let (mut obs, _) = sampler.reset(env, &mut rng)?;
        for _ in 0..cfg.max_episode_steps {
            if obs.admissible.is_empty() {
                break;
            }
            let action = obs.admissible[rng.random_range(0..obs.admissible.len())].clone();
            let res = env.step(&action)?;
            seen.push(obs);
            obs = res.observation;
            if res.done || res.truncated {
                break;
            }
        }
        seen.push(obs);
    }
    Ok(Vocab::build(
        &seen,
        cfg.vocab_max_words,
        1,
        cfg.vocab_oov_buckets,
    ))
}

/// What one iteration collected, ready for the update: decisions with their advantages and
/// return targets, the episodes that finished, and the env steps taken.
pub(crate) struct Collected {
    pub(crate) decided: Vec<Decided>,
    pub(crate) advantages: Vec<f32>,
    pub(crate) returns: Vec<f32>,
    pub(crate) episodes: Vec<EpisodeStats>,
    pub(crate) steps: usize,
}

fn mean(xs: impl Iterator<Item = f32>) -> f32 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { 0.0 } else { s / n as f32 }
}

/// Held while a learner seeds the backend's process-wide RNG and draws its initial weights.
pub(crate) static WEIGHT_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The policy learner. A clone is an independent learner in the same state (network, optimizer
/// moments, RNG, counters): e.g. several sim-to-real budgets continued from one policy.
#[derive(Clone)]
pub struct Trainer {
    pub(crate) cfg: TrainConfig,
    pub(crate) featurizer: Featurizer,
    backend: BackendKind,
    device: Device,
    pub(crate) net: PolicyNet,
    pub(crate) optim: ModuleOptimizer,
    /// The plain-Rust twin of `net` that rollouts run.
    pub(crate) native: NativeNet,
    /// GRPO's frozen reference policy for the KL penalty.
    pub(crate) reference: Option<NativeNet>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) counters: Counters,
    /// Updates train the critic only (see [`Self::freeze_policy`]).
    policy_frozen: bool,
}

impl Trainer {
    /// A fresh learner over `vocab` on `device` (weights seeded by `cfg.seed`).
    pub fn new(
        cfg: TrainConfig,
        vocab: Vocab,
        device: &SelectedDevice,
    ) -> Result<Self, PolicyError> {
        cfg.validate().map_err(PolicyError::Config)?;
        let featurizer = Featurizer::new(vocab);
        let shape = NetShape {
            state_dim: featurizer.state_dim(),
            action_dim: featurizer.action_dim(),
            hidden: cfg.hidden,
        };
        let ad = device.autodiff();
        // the backend's RNG is one per process: seeding it and drawing the initial weights must
        // not interleave with another thread's, or the same seed gives other weights
        let net = {
            let _guard = WEIGHT_INIT.lock().unwrap_or_else(|e| e.into_inner());
            ad.seed(cfg.seed);
            PolicyNet::new(shape, &ad)
        };
        let optim = cfg.optimizer.adam().init();
        let reference = cfg.loss.kl_coef != 0.0;
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Ok(Self::assemble(
            cfg,
            featurizer,
            (device.kind, ad),
            net,
            optim,
            reference,
            rng,
            Counters::default(),
        ))
    }

    /// The one place a learner is put together, fresh ([`Self::new`]) or from a checkpoint
    /// (`resume`, in `checkpoint.rs`): the rollouts' plain-Rust twin of `net` and, with
    /// `reference`, GRPO's KL reference are derived from `net` here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        cfg: TrainConfig,
        featurizer: Featurizer,
        (backend, device): (BackendKind, Device),
        net: PolicyNet,
        optim: ModuleOptimizer,
        reference: bool,
        rng: ChaCha8Rng,
        counters: Counters,
    ) -> Self {
        let native = NativeNet::from_net(&net);
        Self {
            reference: reference.then(|| native.clone()),
            cfg,
            featurizer,
            backend,
            device,
            net,
            optim,
            native,
            rng,
            counters,
            policy_frozen: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Sets the number of iterations (e.g. to extend a resumed run).
    pub fn set_iterations(&mut self, iterations: usize) {
        self.cfg.iterations = iterations;
    }

    /// Progress counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The featurizer (and its vocabulary).
    pub fn featurizer(&self) -> &Featurizer {
        &self.featurizer
    }

    /// The backend in use.
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// The current policy's plain-Rust copy.
    pub fn policy(&self) -> &NativeNet {
        &self.native
    }

    /// The burn network.
    pub fn net(&self) -> &PolicyNet {
        &self.net
    }

    /// Freezes the policy (`true`): the following PPO updates train the critic only and leave
    /// the actor's parameters as they are (sim-to-real's critic warm-up); `false` thaws it.
    /// GRPO, which has no critic, refuses to iterate while frozen.
    pub fn freeze_policy(&mut self, frozen: bool) {
        self.policy_frozen = frozen;
    }

    /// Makes the current policy the KL reference (GRPO).
    pub fn freeze_reference(&mut self) {
        self.reference = Some(self.native.clone());
    }

    /// Continues training for `iterations` more iterations with a fresh learning-rate schedule
    /// (annealed over those iterations only), e.g. sim-to-real after training in a model.
    pub fn extend(&mut self, iterations: usize) {
        self.counters.schedule_start = self.counters.iteration;
        self.cfg.iterations = self.counters.iteration + iterations;
    }

    /// Sets the peak learning rate of the schedule from now on (e.g. a smaller one to fine-tune
    /// in the real env after training in a model).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    fn lr(&self) -> f64 {
        if self.cfg.anneal_lr {
            let start = self.counters.schedule_start.min(self.counters.iteration);
            let span = self.cfg.iterations.saturating_sub(start).max(1) as f64;
            let frac = 1.0 - (self.counters.iteration - start) as f64 / span;
            self.cfg.lr * frac.max(0.0)
        } else {
            self.cfg.lr
        }
    }

    /// Whether the configured number of iterations is done.
    pub fn finished(&self) -> bool {
        self.counters.iteration >= self.cfg.iterations
    }

    /// One iteration: rollouts in `envs` on `sampler`'s tasks, then the update. On a non-finite
    /// loss or gradient the update is abandoned, the network is put back as it was before it, and
    /// the error is returned (the last checkpoint on disk stays the last good one).
    pub fn iterate(
        &mut self,
        envs: &mut [Box<dyn Env>],
        sampler: &TaskSampler,
    ) -> Result<IterationMetrics, PolicyError> {
        self.iterate_with(envs, std::slice::from_ref(sampler))
    }

    /// Like [`iterate`](Self::iterate), with one task sampler per env (PPO: env `e` draws from
    /// `samplers[e % len]`; GRPO: group `g` from `samplers[g % len]`), as a curriculum assigns
    /// tasks. [`IterationMetrics::outcomes`] says which sampler each episode came from.
    pub fn iterate_with(
        &mut self,
        envs: &mut [Box<dyn Env>],
        samplers: &[TaskSampler],
    ) -> Result<IterationMetrics, PolicyError> {
        if envs.is_empty() || samplers.is_empty() {
            return Err(PolicyError::Config("no environments to train in".into()));
        }
        if self.policy_frozen && self.cfg.algo == Algo::Grpo {
            return Err(PolicyError::Config(
                "GRPO has no critic to train while the policy is frozen (a critic warm-up is PPO's)"
                    .into(),
            ));
        }
        let start = Instant::now();
        let lr = self.lr();
        let Collected {
            decided,
            advantages,
            returns,
            episodes,
            steps,
        } = match self.cfg.algo {
            Algo::Ppo => self.collect_ppo(envs, samplers)?,
            Algo::Grpo => self.collect_grpo(envs, samplers)?,
        };
        let rollout_secs = start.elapsed().as_secs_f64();
        let samples: Vec<Sample<'_>> = decided
            .iter()
            .zip(advantages.iter().zip(&returns))
            .map(|(d, (&advantage, &ret))| Sample {
                decided: d,
                advantage,
                ret,
            })
            .collect();
        let plan = EpochPlan {
            epochs: self.cfg.epochs,
            minibatches: self.cfg.minibatches,
            norm_adv: self.cfg.norm_adv && self.cfg.algo == Algo::Ppo,
            lr,
            critic_only: self.policy_frozen,
        };
        let update_start = Instant::now();
        let before = self.net.clone();
        let mut loss = self.cfg.loss;
        if self.cfg.algo == Algo::Grpo {
            // GRPO has no critic: its return targets are not estimates of anything
            loss.vf_coef = 0.0;
        }
        let result = optimise(
            self.net.clone(),
            &mut self.optim,
            &samples,
            &loss,
            plan,
            &self.device,
            &mut self.rng,
        );
        let (net, stats) = match result {
            Ok(ok) => ok,
            Err(e) => {
                self.net = before;
                return Err(e);
            }
        };
        self.net = net;
        self.native = NativeNet::from_net(&self.net);
        let update_secs = update_start.elapsed().as_secs_f64();
        self.counters.iteration += 1;
        self.counters.env_steps += steps as u64;
        self.counters.episodes += episodes.len() as u64;
        self.counters.updates += stats.len() as u64;
        // success is the task's from its beginning: branched episodes (joined mid-way) are
        // left out of it, and of the curriculum's outcomes, unless every episode branched
        let from_start: Vec<&EpisodeStats> = episodes.iter().filter(|e| !e.branched).collect();
        let judged: Vec<&EpisodeStats> = if from_start.is_empty() {
            episodes.iter().collect()
        } else {
            from_start
        };
        Ok(IterationMetrics {
            iteration: self.counters.iteration,
            env_steps: self.counters.env_steps,
            episodes: episodes.len(),
            success: mean(judged.iter().map(|e| if e.success { 1.0 } else { 0.0 })),
            mean_return: mean(episodes.iter().map(|e| e.ret)),
            mean_length: mean(episodes.iter().map(|e| e.length as f32)),
            lr,
            update: mean_stats(&stats),
            samples: samples.len(),
            rollout_steps_per_s: steps as f64 / rollout_secs.max(1e-9),
            update_samples_per_s: (samples.len() * self.cfg.epochs) as f64 / update_secs.max(1e-9),
            seconds: start.elapsed().as_secs_f64(),
            outcomes: episodes
                .iter()
                .filter(|e| !e.branched)
                .map(|e| (e.env % samplers.len(), if e.success { 1.0 } else { 0.0 }))
                .collect(),
        })
    }

    /// Runs `episodes` episodes on `sampler`'s tasks with the current policy (greedy or sampled),
    /// with its own RNG seeded by `seed` so evaluation never perturbs training.
    pub fn evaluate(
        &self,
        env: &mut dyn Env,
        sampler: &TaskSampler,
        episodes: usize,
        greedy: bool,
        seed: u64,
    ) -> Result<EvalReport, PolicyError> {
        evaluate_policy(
            &self.native,
            &self.featurizer,
            env,
            sampler,
            episodes,
            greedy,
            self.cfg.max_episode_steps,
            seed,
        )
    }

    /// Behaviour cloning on demonstrations: `epochs` passes of minibatch steps (size
    /// `batch_size`) maximising the likelihood of each step's action, and fitting the critic to
    /// the discounted return from that step. Only successful trajectories are imitated; steps
    /// whose action is not admissible in their state are skipped. Returns the mean negative
    /// log-likelihood of each epoch. Uses the trainer's RNG (deterministic) and optimizer.
    pub fn behaviour_clone(
        &mut self,
        demos: &[Trajectory],
        epochs: usize,
        batch_size: usize,
        lr: f64,
    ) -> Result<Vec<f32>, PolicyError> {
        let mut decided = vec![];
        let mut returns = vec![];
        for t in demos.iter().filter(|t| t.outcome.success) {
            let mut memory = EpisodeMemory::default();
            let mut rets = vec![0.0f32; t.steps.len()];
            let mut acc = 0.0;
            for (i, s) in t.steps.iter().enumerate().rev() {
                acc = s.reward + self.cfg.gamma * acc;
                rets[i] = acc;
            }
            for (s, ret) in t.steps.iter().zip(rets) {
                if let Some(action) = s.state.admissible.iter().position(|a| *a == s.action) {
                    decided.push(Decided {
                        encoded: self.featurizer.encode(&s.state, &memory),
                        action,
                        log_prob: 0.0,
                        ref_log_prob: 0.0,
                        value: 0.0,
                        reward: s.reward,
                        cut: false,
                        next_value: 0.0,
                    });
                    returns.push(ret);
                }
                memory.record(&s.action);
            }
        }
        if decided.is_empty() {
            return Err(PolicyError::Config(
                "behaviour cloning: no successful demonstration steps".into(),
            ));
        }
        let samples: Vec<Sample<'_>> = decided
            .iter()
            .zip(&returns)
            .map(|(d, &ret)| Sample {
                decided: d,
                advantage: 0.0,
                ret,
            })
            .collect();
        let (max_grad_norm, device) = (self.cfg.loss.max_grad_norm, self.device.clone());
        let optim = &mut self.optim;
        let (net, per_epoch) = run_epochs(
            self.net.clone(),
            &samples,
            epochs,
            batch_size,
            &mut self.rng,
            |net, mb| bc_step(net, optim, mb, max_grad_norm, lr, &device),
        )?;
        self.net = net;
        let losses = per_epoch
            .iter()
            .map(|nll| nll.iter().sum::<f32>() / nll.len().max(1) as f32)
            .collect();
        self.native = NativeNet::from_net(&self.net);
        if self.cfg.loss.kl_coef != 0.0 {
            self.freeze_reference();
        }
        Ok(losses)
    }
}

/// Runs `episodes` episodes of `policy` on `sampler`'s tasks.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_policy(
    policy: &NativeNet,
    featurizer: &Featurizer,
    env: &mut dyn Env,
    sampler: &TaskSampler,
    episodes: usize,
    greedy: bool,
    max_steps: usize,
    seed: u64,
) -> Result<EvalReport, PolicyError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = vec![];
    for _ in 0..episodes {
        let (first, _) = sampler.reset(env, &mut rng)?;
        let actor = EpisodePolicy {
            featurizer,
            net: policy,
            reference: None,
            greedy,
        };
        let (_, s) = run_episode(env, first, actor, max_steps, &mut rng)?;
        stats.push(s);
    }
    let successes = stats.iter().filter(|s| s.success).count();
    Ok(EvalReport {
        episodes,
        successes,
        success: successes as f32 / episodes.max(1) as f32,
        mean_return: mean(stats.iter().map(|s| s.ret)),
        mean_length: mean(stats.iter().map(|s| s.length as f32)),
    })
}
