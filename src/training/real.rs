//! Training in the real env: real-only training and sim-to-real (a learner trained in the
//! model continued on real training instances, [`SeedContext::sim_to_real`]: the one procedure
//! `run`, `efficiency` and `train` use), with the real episodes recorded.

use crate::record::recorder::Recorder;
use crate::training::config::RunConfig;
use crate::training::context::{SeedContext, captured};
use crate::training::synthetic::Switches;
use anyhow::Result;
use dreamgym_buffer::{Provenance, Trajectory};
use dreamgym_policy::{IterationMetrics, TaskSampler, Trainer};
use dreamgym_sim::Env;

impl SeedContext<'_> {
    /// Prepares `trainer` (trained in the model) for `iterations` of sim-to-real: a fresh
    /// learning-rate schedule over them, peaking at `s2r_lr_scale` x `policy.lr`.
    pub(crate) fn begin_sim_to_real(&self, trainer: &mut Trainer, iterations: usize) {
        trainer.extend(iterations);
        trainer.set_learning_rate(self.policy.lr * self.cfg.s2r_lr_scale);
    }

    /// Trains `trainer` for `iterations` iterations in the real env (training instances; set
    /// its schedule first with `Trainer::extend` or [`Self::begin_sim_to_real`]); returns
    /// (online real steps so far in this call, training success) per iteration, and whether
    /// `after_each`, which sees every iteration, stopped it. With `capture`, the episodes played
    /// are handed to it too (all of them once this returns: its envs are dropped here).
    pub(crate) fn train_real(
        &self,
        trainer: &mut Trainer,
        iterations: usize,
        capture: Option<&Recorder>,
        after_each: &mut dyn FnMut(&Trainer, &IterationMetrics) -> Result<Next>,
    ) -> Result<(Vec<(u64, f32)>, bool)> {
        let mut envs = self.real_envs(capture);
        let sampler = TaskSampler::of(self.spec.clone(), self.cfg.train_split());
        let start_steps = trainer.counters().env_steps;
        let mut rows = vec![];
        let mut steps = start_steps;
        for i in 0..iterations {
            self.tell_recording(trainer);
            let m = trainer.iterate(&mut envs, &sampler)?;
            rows.push((m.env_steps - start_steps, m.success));
            self.progress
                .iteration(i + 1, iterations, m.env_steps - steps);
            steps = m.env_steps;
            if after_each(trainer, &m)?.is_break() {
                return Ok((rows, true));
            }
        }
        Ok((rows, false))
    }
}

/// Sim-to-real's schedule: `real` iterations in the real env (training instances) in `rounds`
/// rounds, each followed by `in_model` iterations in the experience model refit on the offline
/// data plus the real episodes so far (or the offline model, without the update); the first
/// `critic_warmup` real iterations train the critic only (the policy frozen), and the
/// learning-rate schedule starts afresh after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SimToRealPlan {
    /// Real iterations in all.
    pub(crate) real: usize,
    /// Rounds (1 to `real`).
    pub(crate) rounds: usize,
    /// Iterations in the model after each round (0: none).
    pub(crate) in_model: usize,
    /// The first real iterations train the critic only, the policy frozen (0: none).
    pub(crate) critic_warmup: usize,
}

impl SimToRealPlan {
    /// `real` real iterations in `cfg.s2r_rounds` rounds, each followed by
    /// `cfg.s2r_synthetic_iterations` in the model, the first `cfg.s2r_critic_warmup` of them
    /// training the critic only.
    pub(crate) fn new(cfg: &RunConfig, real: usize) -> Self {
        Self {
            real,
            rounds: cfg.s2r_rounds.clamp(1, real.max(1)),
            in_model: cfg.s2r_synthetic_iterations,
            critic_warmup: cfg.s2r_critic_warmup,
        }
    }

    /// Every iteration of the plan, real and in the model: the learning-rate schedule's length.
    pub(crate) fn iterations(&self) -> usize {
        self.real + self.rounds * self.in_model
    }

    /// The real iterations of round `round` (the rounds split `real` as evenly as they can).
    fn real_in_round(&self, round: usize) -> usize {
        self.real * (round + 1) / self.rounds - self.real * round / self.rounds
    }
}

/// What one sim-to-real did.
pub(crate) struct SimToRealRun {
    /// (online real steps so far, training success) per real iteration.
    pub(crate) rows: Vec<(u64, f32)>,
    /// The real episodes it played (with `keep_real`).
    pub(crate) real_episodes: Vec<Trajectory>,
    /// Steps it took in the model.
    pub(crate) synthetic_steps: u64,
    /// Whether `after_each` stopped it before the plan's end.
    pub(crate) stopped: bool,
}

/// Whether to go on after an iteration (`after_each` of [`SeedContext::sim_to_real`]).
pub(crate) type Next = std::ops::ControlFlow<()>;

impl SeedContext<'_> {
    /// Sim-to-real, the one procedure `dreamgym run`, `dreamgym efficiency` and `dreamgym train`
    /// use: continues `trainer` (trained in the model) on the real env by `plan`, on a fresh
    /// learning-rate schedule over the whole plan ([`Self::begin_sim_to_real`]). `done` real
    /// iterations of a single-round plan without model iterations already done (a resumed run)
    /// are not redone, and the schedule is the checkpoint's. With `model_update`, the model of
    /// each round's iterations is refit on the offline data plus the real episodes so far; with
    /// `keep_real`, those episodes are returned. `after_each` sees every iteration (a checkpoint)
    /// and may stop the procedure there.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn sim_to_real(
        &self,
        trainer: &mut Trainer,
        plan: SimToRealPlan,
        done: usize,
        model_update: bool,
        keep_real: bool,
        after_each: &mut dyn FnMut(&Trainer, &IterationMetrics) -> Result<Next>,
    ) -> Result<SimToRealRun> {
        if done > 0 && (plan.rounds > 1 || plan.in_model > 0) {
            anyhow::bail!(
                "sim-to-real in {} rounds with {} model iterations each cannot continue mid-way (the refit model's real episodes are not in the checkpoint)",
                plan.rounds,
                plan.in_model
            );
        }
        if done == 0 {
            self.begin_sim_to_real(trainer, plan.iterations());
        }
        let capture = (keep_real || plan.in_model > 0).then(Recorder::in_memory);
        let mut run = SimToRealRun {
            rows: vec![],
            real_episodes: vec![],
            synthetic_steps: 0,
            stopped: false,
        };
        // the critic warm-up: the first real iterations train the critic only (PPO's; the
        // config refuses it with GRPO), then the schedule starts afresh over the rest
        let warmup = plan.critic_warmup.min(plan.real);
        for round in 0..plan.rounds {
            let n = plan.real_in_round(round).saturating_sub(done);
            let warm = if round == 0 {
                warmup.saturating_sub(done).min(n)
            } else {
                0
            };
            for (part, frozen) in [(warm, true), (n - warm, false)] {
                if part == 0 {
                    continue;
                }
                // rows count online real steps across the rounds
                let offset = run.rows.last().map_or(0, |r| r.0);
                trainer.freeze_policy(frozen);
                let trained = self.train_real(trainer, part, capture.as_ref(), after_each);
                trainer.freeze_policy(false);
                let (rows, stopped) = trained?;
                run.rows
                    .extend(rows.into_iter().map(|(x, y)| (offset + x, y)));
                if let Some(c) = &capture {
                    run.real_episodes.extend(c.take());
                }
                if stopped {
                    run.stopped = true;
                    return Ok(run);
                }
                if frozen {
                    trainer.extend(plan.iterations().saturating_sub(warmup));
                }
            }
            if plan.in_model == 0 {
                continue;
            }
            let data = self.with_offline(&run.real_episodes);
            let model = if model_update {
                self.refit(&data)?
            } else {
                self.model(true)?
            };
            let mut lp = self.synthetic_loop_in(model, &data, Switches::ALL)?;
            let before = trainer.counters().env_steps;
            for _ in 0..plan.in_model {
                let m = lp.step(trainer)?;
                if after_each(trainer, &m)?.is_break() {
                    run.stopped = true;
                    break;
                }
            }
            run.synthetic_steps += trainer.counters().env_steps - before;
            if run.stopped {
                return Ok(run);
            }
        }
        Ok(run)
    }

    /// The real envs of one round of training, recorded; with `capture`, their episodes are
    /// handed to it too.
    fn real_envs(&self, capture: Option<&Recorder>) -> Vec<Box<dyn Env>> {
        (0..self.policy.num_envs)
            .map(|_| {
                let env = self.recorded(self.factory.open(), Provenance::Real);
                match capture {
                    Some(c) => captured(env, c),
                    None => env,
                }
            })
            .collect()
    }
}
