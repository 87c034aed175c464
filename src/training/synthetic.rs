//! The DreamGym loop: a learner trained in the experience model, one iteration at a time, the
//! curriculum choosing the tasks (`SyntheticLoop`, `SeedContext::train_synthetic`); the model
//! envs its episodes are played in, and the check that the model answered.

use crate::record::env::IterationClock;
use crate::training::config::{EnsemblePlayer, ExperienceModelKind};
use crate::training::context::SeedContext;
use crate::training::families::{Families, harder_starts, offline_families};
use crate::training::offline::steps_of;
use crate::training::validation::{Validation, ValidationReport};
use anyhow::Result;
use dreamgym_buffer::{Observation, Provenance, Trajectory};
use dreamgym_curriculum::{Curriculum, DifficultyPoint};
use dreamgym_policy::{TaskSampler, Trainer};
use dreamgym_sim::Env;
use dreamgym_sim::model::ExperienceModel;
use dreamgym_sim::model::branch::{BranchHorizon, Branching};
use dreamgym_sim::model::ensemble::{Ensemble, HaltRule, bootstrap};
use dreamgym_sim::model::env::{
    EpisodeSink, FailureCounts, ModelEnv, ModelFailures, SharedRetrieval, WorldSampling,
};
use dreamgym_sim::model::native::NativeModel;
use dreamgym_sim::model::retrieval::{Retrieval, RetrievalMode};
use dreamgym_sim::model::world::WorldPrior;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, RwLock};

/// What the DreamGym agent is trained with; turning one off gives an ablation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    /// The native model's rule induction (an LLM model's reasoning field).
    pub reasoning: bool,
    /// Task selection by value and harder variants.
    pub curriculum: bool,
    /// The model is shown real transitions of the instance being played (`RunConfig::retrieval`).
    pub retrieval: bool,
    /// `RunConfig::sampled_world` as configured (`false`: the other way round — the
    /// ablation that shows what sampling what the data leave open changes).
    pub sampling_as_configured: bool,
    /// `RunConfig::ensemble` as configured (`false`: the other way round — the ablation that
    /// shows what the ensemble and its halts change).
    pub ensemble_as_configured: bool,
}

impl Switches {
    /// Everything on: DreamGym itself.
    pub const ALL: Switches = Switches {
        reasoning: true,
        curriculum: true,
        retrieval: true,
        sampling_as_configured: true,
        ensemble_as_configured: true,
    };
}

/// What one seed of the synthetic training produced.
pub(crate) struct SyntheticRun {
    /// Training success inside the model over the last 5 iterations.
    pub(crate) model_success: f32,
    /// What the model could not predict usably.
    pub(crate) failures: FailureCounts,
    /// The final task pool with recent mean outcome and value.
    pub(crate) pool: Vec<serde_json::Value>,
    /// The learner, trained.
    pub(crate) trainer: Trainer,
    /// Its steps in the model.
    pub(crate) synthetic_steps: u64,
    /// Curriculum difficulty per iteration.
    pub(crate) history: Vec<DifficultyPoint>,
    /// Generated variants the feasibility check rejected.
    pub(crate) rejected: usize,
    /// What validation against unlearning did, where it ran.
    pub(crate) validation: Option<ValidationReport>,
    /// (synthetic steps so far, training success inside the model) per iteration.
    pub(crate) rows: Vec<(u64, f32)>,
}

/// Training in the experience model, one iteration at a time: the model envs, the curriculum
/// (pool, generator, RNG).
pub(crate) struct SyntheticLoop {
    envs: Vec<Box<dyn Env>>,
    /// The curriculum (saved with checkpoints by `dreamgym train`).
    pub(crate) pool: Curriculum,
    generator: Option<Families>,
    /// The curriculum's RNG.
    pub(crate) rng: ChaCha8Rng,
    base: TaskSampler,
    curriculum: bool,
    expand_every: usize,
    batch: usize,
    /// What the model could not predict usably, over all of the loop's envs.
    pub(crate) failures: Arc<ModelFailures>,
    /// The recording's iteration clock, set before each iteration.
    clock: Option<IterationClock>,
    /// Where retrieval admits synthetic episodes: the episodes the envs finished, added to the
    /// shared index before each iteration.
    retained: Option<RetainedEpisodes>,
    /// Validation against unlearning, where `validate_every` asks for it.
    validation: Option<Validation>,
    /// Where episodes branch from real states: the horizon the envs share, grown over the
    /// loop's iterations.
    branching: Option<BranchSchedule>,
    /// Iterations this loop has run.
    done: usize,
}

/// The horizon of a loop's branched rollouts over its iterations (`RunConfig::branch_horizon`).
struct BranchSchedule {
    horizon: BranchHorizon,
    /// Horizon at the first and the last iteration.
    span: (u32, u32),
    /// Iterations the horizon grows over.
    iterations: usize,
}

/// The synthetic episodes a loop's envs finish and the index they join (between iterations, in
/// the order the episodes ended: the rollout steps its envs one after another, so the order,
/// and what each episode is shown, is the same in every run with the same seed).
pub(crate) struct RetainedEpisodes {
    sink: EpisodeSink,
    index: SharedRetrieval,
}

impl RetainedEpisodes {
    /// Adds the episodes finished since the last call to the index.
    fn add_finished(&self) {
        let finished = std::mem::take(&mut *self.sink.lock().unwrap_or_else(|e| e.into_inner()));
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        for t in &finished {
            index.add(t);
        }
    }
}

impl SyntheticLoop {
    /// One policy iteration in the model, then the curriculum update.
    pub(crate) fn step(
        &mut self,
        trainer: &mut Trainer,
    ) -> Result<dreamgym_policy::IterationMetrics> {
        let round = trainer.counters().iteration + 1;
        if let Some(r) = &self.retained {
            r.add_finished();
        }
        if let Some(c) = &self.clock {
            c.store(round as u64, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(b) = &self.branching {
            let (start, end) = b.span;
            b.horizon.set(BranchHorizon::scheduled(
                start,
                end,
                self.done,
                b.iterations,
            ));
        }
        self.done += 1;
        let (samplers, batch) = if self.curriculum {
            let batch = self.pool.sample_batch(self.batch, &mut self.rng);
            let samplers: Vec<TaskSampler> = batch
                .iter()
                .map(|&id| TaskSampler::any(self.pool.tasks()[id].variant.spec()))
                .collect();
            (samplers, batch)
        } else {
            (vec![self.base.clone()], vec![])
        };
        let m = trainer.iterate_with(&mut self.envs, &samplers)?;
        if self.curriculum {
            for (k, o) in &m.outcomes {
                self.pool.record(batch[*k], &[*o]);
            }
            self.pool.record_round(round, &batch);
            if let Some(g) = self.generator.as_mut()
                && round.is_multiple_of(self.expand_every)
            {
                self.pool.expand(g, &mut self.rng);
            }
        }
        Ok(m)
    }
}

/// The real env's step limit, read off `offline` (random episodes run into it).
fn max_steps_of(offline: &[Trajectory]) -> u32 {
    offline
        .iter()
        .map(|t| t.steps.len())
        .max()
        .unwrap_or(1)
        .max(1) as u32
}

/// Says loudly when the experience model failed on more than 5% of the steps asked of it, and
/// fails the run past `max_share`: training on a model that cannot answer is no DreamGym run.
fn check_failures(f: &FailureCounts, max_share: f32) -> Result<()> {
    let share = f.share();
    if share > f64::from(max_share) {
        anyhow::bail!(
            "the experience model failed on {:.1}% of the steps asked of it ({} rejected replies, {} states without an admissible action, {} usable predictions), more than max_model_failure_share = {max_share}: its synthetic episodes were cut there and training on them says nothing",
            share * 100.0,
            f.rejected,
            f.dead_ends,
            f.predicted
        );
    }
    if share > 0.05 {
        tracing::warn!(
            "the experience model failed on {:.1}% of the steps asked of it ({} rejected replies, {} states without an admissible action); those synthetic episodes were cut",
            share * 100.0,
            f.rejected,
            f.dead_ends
        );
    }
    Ok(())
}

/// What the model envs of one loop share.
struct LoopShared<'a> {
    /// The count of the model's failures.
    failures: &'a Arc<ModelFailures>,
    /// Native models on bootstrap resamples (the ensemble's judges), where built.
    members: Option<&'a [Arc<dyn ExperienceModel>]>,
    /// Where episodes branch from (each env draws with a seed of its own), where they do.
    branching: Option<&'a Branching>,
}

impl SeedContext<'_> {
    /// The loop's model envs: episodes start from the real initial states of `real` (and
    /// `extra_starts`), and retrieval reads `real`'s transitions (and, where `retrievable`
    /// admits synthetic ones, the episodes the envs finish, which go to the returned sink).
    fn model_envs(
        &self,
        model: Arc<dyn ExperienceModel>,
        real: &[Trajectory],
        extra_starts: &[(dreamgym_buffer::Task, Observation)],
        sw: Switches,
        shared: LoopShared<'_>,
    ) -> (Vec<Box<dyn Env>>, Option<RetainedEpisodes>) {
        let LoopShared {
            failures,
            members,
            branching,
        } = shared;
        // the real env's step limit, read off the offline data (random episodes run into it), so
        // the policy cannot learn to take longer in the model than the real env allows
        let max_steps = max_steps_of(&self.offline);
        // one index for the loop's envs
        let mode = self.retrieval_mode(sw);
        let retrievable = self.cfg.retrievable;
        let real_shown = if retrievable.admits(Provenance::Real) {
            real
        } else {
            &[]
        };
        let index = Arc::new(RwLock::new(Retrieval::new(real_shown, mode)));
        let retained = (mode != RetrievalMode::Off && retrievable.admits(Provenance::Synthetic))
            .then(|| RetainedEpisodes {
                sink: EpisodeSink::default(),
                index: index.clone(),
            });
        // which fit of the model played an episode: the real transitions it was fit on (the
        // offline data, and after each sim-to-real round its real episodes too)
        let fit = [("model_fit".to_string(), steps_of(real).to_string())];
        // what the data leave open, drawn per episode (one prior for the loop's envs)
        let sampled = self.cfg.sampled_world == sw.sampling_as_configured;
        let prior = sampled.then(|| Arc::new(WorldPrior::fit(real)));
        // K native models on bootstrap resamples of the episodes judge each step
        let ensemble = (self.cfg.ensemble == sw.ensemble_as_configured)
            .then_some(members)
            .flatten()
            .map(|members| {
                let rule = HaltRule {
                    dissent: self.cfg.halt_dissent,
                    next_state: self.cfg.halt_on_next_state,
                };
                Arc::new(match self.cfg.ensemble_player {
                    EnsemblePlayer::Member => Ensemble::new(members.to_vec(), rule),
                    EnsemblePlayer::AllData => {
                        Ensemble::judged(model.clone(), members.to_vec(), rule)
                    }
                })
            });
        let envs = (0..self.cfg.synthetic_envs.max(1))
            .map(|k| {
                let mut m = ModelEnv::with_retrieval(model.clone(), real, max_steps, index.clone());
                m.count_failures_in(failures.clone());
                m.set_uncertainty_penalty(self.cfg.uncertainty_penalty);
                if let Some(prior) = &prior {
                    m.sample_worlds(WorldSampling {
                        prior: prior.clone(),
                        evidence_dropout: self.cfg.evidence_dropout,
                        seed: self.seed ^ (k as u64).wrapping_mul(0x2545_f491_4f6c_dd1d),
                    });
                }
                if let Some(e) = &ensemble {
                    m.play_ensemble(
                        e.clone(),
                        self.seed ^ (k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    );
                }
                if let Some(b) = branching {
                    m.branch_from(
                        b.with_seed(self.seed ^ (k as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)),
                    );
                }
                for (t, o) in extra_starts {
                    m.add_start(t.clone(), o.clone());
                }
                if let Some(r) = &retained {
                    m.keep_episodes_in(r.sink.clone());
                }
                self.recorded_with(Box::new(m), Provenance::Synthetic, &fit)
            })
            .collect();
        (envs, retained)
    }

    /// The synthetic-training loop with the switches `sw` (see [`Switches`]): model envs, the
    /// curriculum and its RNG.
    pub(crate) fn synthetic_loop(&self, sw: Switches) -> Result<SyntheticLoop> {
        self.synthetic_loop_in(self.model(sw.reasoning)?, &self.offline, sw)
    }

    /// [`Self::synthetic_loop`] in `model`, its episodes starting from the initial states of the
    /// real trajectories `real` and retrieval reading them (sim-to-real's model update: the
    /// offline data and the real episodes since).
    pub(crate) fn synthetic_loop_in(
        &self,
        model: Arc<dyn ExperienceModel>,
        real: &[Trajectory],
        sw: Switches,
    ) -> Result<SyntheticLoop> {
        // `sw.reasoning` chose `model`; the loop plays what it is given
        let Switches { curriculum, .. } = sw;
        // the curriculum's seed tasks: every (template, difficulty) family of the offline data
        let families = offline_families(&self.offline);
        // an LLM experience model writes the curriculum's tasks itself (the paper's M_task);
        // otherwise the env's own difficulty levels or knobs make them
        let generator = match (curriculum, self.cfg.experience_model) {
            (false, _) => None,
            (true, ExperienceModelKind::Llm) => Some(Families::written_by_llm(&self.offline)?),
            (true, ExperienceModelKind::Native) => Some(Families::for_env(self.factory)),
        };
        let starts = match &generator {
            Some(g) => harder_starts(
                self.factory,
                g,
                &families,
                self.cfg.train_split(),
                self.seed,
            )?,
            None => vec![],
        };
        // a model that cannot answer stops the run within a window of steps, not at the end
        let failures = Arc::new(ModelFailures::with_limit(f64::from(
            self.cfg.max_model_failure_share,
        )));
        // native models on bootstrap resamples of the episodes: the ensemble's judges and the
        // validation's models
        let native = self.cfg.experience_model == ExperienceModelKind::Native;
        let members = (native
            && (self.cfg.ensemble == sw.ensemble_as_configured || self.cfg.validate_every > 0))
            .then(|| self.bootstrap_members(real, sw.reasoning));
        // branched rollouts: one horizon for the loop's envs, grown over its iterations, and
        // one set of real episodes to branch from
        let branching = (self.cfg.branch_share > 0.0).then(|| BranchSchedule {
            horizon: BranchHorizon::new(self.cfg.branch_horizon.0),
            span: self.cfg.branch_horizon,
            iterations: self.cfg.iterations,
        });
        let branch_from = branching
            .as_ref()
            .map(|b| Branching::new(real, self.cfg.branch_share, b.horizon.clone(), self.seed));
        let (envs, retained) = self.model_envs(
            model,
            real,
            &starts,
            sw,
            LoopShared {
                failures: &failures,
                members: members.as_deref(),
                branching: branch_from.as_ref(),
            },
        );
        let validation = (self.cfg.validate_every > 0)
            .then_some(members)
            .flatten()
            .map(|members| {
                // the models retrieve real transitions as the loop's do, from one index
                let index = Arc::new(RwLock::new(Retrieval::new(real, self.retrieval_mode(sw))));
                let max_steps = max_steps_of(&self.offline);
                let envs = members
                    .into_iter()
                    .map(|m| {
                        let env = ModelEnv::with_retrieval(m, real, max_steps, index.clone());
                        Box::new(env) as Box<dyn Env>
                    })
                    .collect();
                Validation::new(
                    envs,
                    TaskSampler::any(self.spec.clone()),
                    self.cfg.validation_episodes,
                    self.seed ^ 0x7a11_da7e,
                )
            });
        Ok(SyntheticLoop {
            envs,
            pool: Curriculum::new(self.cfg.curriculum, families),
            generator,
            rng: ChaCha8Rng::seed_from_u64(self.seed ^ 0xc0ff),
            base: TaskSampler::any(self.spec.clone()),
            curriculum,
            expand_every: self.cfg.expand_every.max(1),
            batch: self.cfg.synthetic_envs.max(1).max(self.policy.groups),
            failures,
            clock: self.recording.as_ref().map(|r| r.clock.clone()),
            retained,
            validation,
            branching,
            done: 0,
        })
    }

    /// What the model envs of a loop with the switches `sw` retrieve (`RunConfig::retrieval`,
    /// off without retrieval).
    fn retrieval_mode(&self, sw: Switches) -> RetrievalMode {
        if sw.retrieval {
            self.cfg.retrieval
        } else {
            RetrievalMode::Off
        }
    }

    /// `ensemble_members` native models, each fit on a bootstrap resample of `real`'s episodes
    /// (with or without rule induction), seeded by the run's seed.
    fn bootstrap_members(&self, real: &[Trajectory], rules: bool) -> Vec<Arc<dyn ExperienceModel>> {
        bootstrap(real, self.cfg.ensemble_members, self.seed)
            .iter()
            .map(|r| Arc::new(NativeModel::fit_with(r, rules)) as Arc<dyn ExperienceModel>)
            .collect()
    }

    /// Trains a fresh learner in the experience model for `cfg.iterations` iterations (see
    /// [`Self::synthetic_loop`] for the switches).
    pub(crate) fn train_synthetic(&self, sw: Switches) -> Result<SyntheticRun> {
        let mut lp = self.synthetic_loop(sw)?;
        let mut trainer = self.start_with_envs(false, self.cfg.synthetic_envs)?;
        let mut rows: Vec<(u64, f32)> = vec![];
        let mut steps = trainer.counters().env_steps;
        let iterations = self.cfg.iterations;
        let every = self.cfg.validate_every.max(1);
        let mut validation = lp.validation.take();
        if let Some(v) = validation.as_mut() {
            v.check(0, &trainer)?;
        }
        for i in 0..iterations {
            let m = lp.step(&mut trainer)?;
            self.progress
                .iteration(i + 1, iterations, m.env_steps - steps);
            steps = m.env_steps;
            rows.push((m.env_steps, m.success));
            if let Some(v) = validation.as_mut()
                && ((i + 1) % every == 0 || i + 1 == iterations)
            {
                v.check(i + 1, &trainer)?;
            }
        }
        let synthetic_steps = trainer.counters().env_steps;
        let (trainer, validation) = match validation {
            Some(v) => {
                let (t, report) = v.finish(trainer, iterations);
                (t, Some(report))
            }
            None => (trainer, None),
        };
        // the success inside the model of the policy kept: the 5 iterations before it (the
        // validation's own mean where it is the warm start)
        let kept = validation.as_ref().map_or(iterations, |v| v.kept_iteration);
        let tail = &rows[kept.saturating_sub(5)..kept];
        let model_success = match (tail.is_empty(), &validation) {
            (true, Some(v)) => v.checks.first().map_or(0.0, |c| c.mean),
            _ => tail.iter().map(|r| r.1).sum::<f32>() / tail.len().max(1) as f32,
        };
        let pool = &lp.pool;
        let pool_json = pool
            .tasks()
            .iter()
            .map(|t| serde_json::json!({"task": t.variant, "origin": t.origin, "mean": t.mean(), "value": t.value()}))
            .collect();
        let failures = lp.failures.counts();
        check_failures(&failures, self.cfg.max_model_failure_share)?;
        Ok(SyntheticRun {
            failures,
            model_success,
            validation,
            pool: pool_json,
            synthetic_steps,
            history: pool.history().to_vec(),
            rejected: pool.rejected(),
            trainer,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::config::RunConfig;
    use crate::training::context::KeysDoorsFixture;
    use dreamgym_policy::TrainConfig;
    use dreamgym_sim::model::retrieval::Retrievable;

    /// A keys_doors loop with `retrievable`, two iterations in: the transitions its retrieval
    /// index holds before and after.
    fn indexed_after_two_iterations(retrievable: Retrievable) -> (usize, usize) {
        let cfg = RunConfig {
            offline_episodes: 12,
            synthetic_envs: 4,
            bc_warm_start: false,
            retrievable,
            policy: TrainConfig {
                num_steps: 32,
                ..RunConfig::default().policy
            },
            ..RunConfig::default()
        };
        let fixture = KeysDoorsFixture::new(&cfg);
        let ctx = fixture.context(&cfg);
        let mut lp = ctx
            .synthetic_loop(Switches {
                curriculum: false,
                ..Switches::ALL
            })
            .unwrap();
        let mut trainer = ctx.start_with_envs(false, cfg.synthetic_envs).unwrap();
        let indexed = |lp: &SyntheticLoop| {
            lp.retained
                .as_ref()
                .map(|r| r.index.read().unwrap().transitions())
        };
        let before = indexed(&lp).unwrap_or(0);
        lp.step(&mut trainer).unwrap();
        lp.step(&mut trainer).unwrap();
        // what the first iteration finished joins before the second; the second's, before a third
        if let Some(r) = &lp.retained {
            r.add_finished();
        }
        (before, indexed(&lp).unwrap_or(0))
    }

    #[test]
    fn a_loop_shows_its_synthetic_episodes_only_where_retrieval_admits_them() {
        let (before, after) = indexed_after_two_iterations(Retrievable::All);
        assert!(before > 0, "the offline data is indexed");
        assert!(
            after > before,
            "synthetic episodes joined: {before} -> {after}"
        );
        // the same seed gives the same index
        assert_eq!(
            indexed_after_two_iterations(Retrievable::All),
            (before, after)
        );
        // real only: no sink, nothing joins
        assert_eq!(indexed_after_two_iterations(Retrievable::Real), (0, 0));
    }
}
