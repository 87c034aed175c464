//! What every method of a comparison shares on one seed (`SeedContext`: the offline seed data,
//! the vocabulary, the experience models fit on it, the env, evaluation, the recording), and the
//! two ways a learner is trained: in the experience model with the curriculum
//! (`SyntheticLoop`) and in the real env (`SeedContext::train_real`).

use crate::envs::EnvFactory;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::recording_env::{InPlay, IterationClock, RecordingEnv};
use crate::run_config::{ExperienceModelKind, OfflineMix, RunConfig};
use crate::task_families::{Families, harder_starts, offline_families};
use anyhow::{Context, Result};
use dreamgym_buffer::{Observation, Provenance, Trajectory};
use dreamgym_curriculum::{Curriculum, DifficultyPoint};
use dreamgym_policy::{SelectedDevice, Split, TaskSampler, TrainConfig, Trainer, Vocab};
use dreamgym_sim::model::ExperienceModel;
use dreamgym_sim::model::env::{
    EpisodeSink, FailureCounts, ModelEnv, ModelFailures, SharedRetrieval,
};
use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
use dreamgym_sim::model::native::NativeModel;
use dreamgym_sim::model::retrieval::{Retrieval, RetrievalMode};
use dreamgym_sim::policy::{
    BehaviourPolicy, ExpertFaults, MAX_EPISODE_STEPS, collect_episode_limited,
};
use dreamgym_sim::{Env, TaskSpec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Collects `n` episodes on instances of `sampler`'s split with the configured behaviour mix.
///
/// Instances the expert cannot solve are skipped and another is drawn, as `collect` does; so are
/// instances given up because the expert failed (raised, hung, crashed: counted by kind in
/// `faults`; a noisy expert's failed step turns random and its episode goes on). More than
/// `max_expert_failure_share` of the instances with an expert failure, or a family where the
/// expert solves almost nothing, is an error naming the env and the failure, not an endless loop.
pub fn collect_split(
    env: &mut dyn Env,
    sampler: &TaskSampler,
    n: usize,
    mix: OfflineMix,
    seed: u64,
    max_expert_failure_share: f64,
    faults: &mut ExpertFaults,
) -> Result<Vec<Trajectory>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let total = (mix.expert + mix.noisy + mix.random).max(1e-6);
    let mut out = Vec::with_capacity(n);
    let mut here = ExpertFaults::default();
    let mut skipped = 0;
    let mut last_fault = String::new();
    for i in 0..n {
        let share = i as f32 / n.max(1) as f32;
        let policy = if share < mix.expert / total {
            BehaviourPolicy::Expert
        } else if share < (mix.expert + mix.noisy) / total {
            BehaviourPolicy::NoisyExpert { epsilon: mix.noise }
        } else {
            BehaviourPolicy::Random
        };
        loop {
            let (_, instance) = sampler.reset(env, &mut rng)?;
            here.attempted += 1;
            let given_up = skipped + here.abandoned;
            let result = collect_episode_limited(
                env,
                &sampler.spec,
                instance,
                policy,
                &mut rng,
                MAX_EPISODE_STEPS,
                &mut here,
            );
            let context = |here: &ExpertFaults, skipped: usize| {
                format!(
                    "collecting offline episode {i} ({skipped} unsolvable instances skipped before; expert failures: {})",
                    here.describe()
                )
            };
            let collected = match result {
                Ok(t) => {
                    out.push(t);
                    true
                }
                Err(dreamgym_sim::EnvError::NoPlan { .. }) if given_up < 10 * n.max(1) => {
                    skipped += 1;
                    false
                }
                Err(e @ dreamgym_sim::EnvError::Expert { .. }) if given_up < 10 * n.max(1) => {
                    here.abandoned += 1;
                    last_fault = e.to_string();
                    false
                }
                Err(e) => {
                    faults.add(&here);
                    return Err(e).with_context(|| context(&here, skipped));
                }
            };
            if here.faulty > 0 && last_fault.is_empty() {
                last_fault = "a noisy expert's step failed and was played at random".into();
            }
            if let Err(m) = here.check(max_expert_failure_share, env.id(), &last_fault, false) {
                faults.add(&here);
                return Err(anyhow::Error::msg(m)).with_context(|| context(&here, skipped));
            }
            if collected {
                break;
            }
        }
    }
    // the share is judged on the whole collection too, however few instances it drew
    if let Err(m) = here.check(max_expert_failure_share, env.id(), &last_fault, true) {
        faults.add(&here);
        anyhow::bail!(m);
    }
    if skipped > 0 {
        tracing::warn!(
            "offline data: skipped {skipped} instances the expert could not solve (`dreamgym scenario check --expert N` shows where)"
        );
    }
    if here.total() > 0 {
        tracing::warn!(
            "offline data on {}: the expert failed: {} (the latest: {last_fault})",
            env.id(),
            here.describe()
        );
    }
    faults.add(&here);
    Ok(out)
}

pub(crate) fn steps_of(ts: &[Trajectory]) -> u64 {
    ts.iter().map(|t| t.steps.len() as u64).sum()
}

pub(crate) fn vocab_of(ts: &[Trajectory], cfg: &TrainConfig) -> Vocab {
    let obs: Vec<&Observation> = ts
        .iter()
        .flat_map(|t| t.steps.iter().flat_map(|s| [&s.state, &s.next_state]))
        .collect();
    Vocab::build(obs, cfg.vocab_max_words, 1, cfg.vocab_oov_buckets)
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
        let (samplers, batch) = if self.curriculum {
            let batch = self.pool.sample_batch(self.batch, &mut self.rng);
            let samplers: Vec<TaskSampler> = batch
                .iter()
                .map(|&id| TaskSampler {
                    spec: self.pool.tasks()[id].variant.spec(),
                    split: Split::Any,
                })
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

/// Everything a run shares across methods for one seed.
pub(crate) struct SeedContext<'a> {
    pub(crate) cfg: &'a RunConfig,
    pub(crate) factory: &'a EnvFactory,
    pub(crate) spec: TaskSpec,
    pub(crate) device: &'a SelectedDevice,
    pub(crate) seed: u64,
    pub(crate) offline: Vec<Trajectory>,
    pub(crate) vocab: Vocab,
    pub(crate) policy: TrainConfig,
    /// Experience models by whether reasoning (native: rule induction; LLM: the reasoning
    /// field) is on — native ones fit on `offline` once and shared.
    pub(crate) models: std::cell::RefCell<BTreeMap<bool, Arc<dyn ExperienceModel>>>,
    /// Where iterations are reported.
    pub(crate) progress: &'a Progress,
    /// Where the run's episodes are recorded (`dreamgym run`'s `buffer.dglog`), if anywhere.
    pub(crate) recording: Option<Recording>,
}

/// A run's recording: the recorder, the method being trained (a tag of every episode), the
/// policy iteration acting, and the recording envs with episodes in play.
pub(crate) struct Recording {
    recorder: Recorder,
    method: std::cell::RefCell<String>,
    clock: IterationClock,
    in_play: InPlay,
}

impl Recording {
    /// Record to `recorder`.
    pub(crate) fn new(recorder: Recorder) -> Self {
        Self {
            recorder,
            method: Default::default(),
            clock: Default::default(),
            in_play: Default::default(),
        }
    }
}

/// Held-out success of a uniformly random admissible policy (the floor every method must clear).
pub fn random_success(
    env: &mut dyn Env,
    spec: &TaskSpec,
    episodes: usize,
    max_steps: usize,
    seed: u64,
) -> Result<f32> {
    use rand::RngExt;
    let held = TaskSampler {
        spec: spec.clone(),
        split: Split::HeldOut,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut wins = 0;
    for _ in 0..episodes {
        let (mut obs, _) = held.reset(env, &mut rng)?;
        for _ in 0..max_steps {
            if obs.admissible.is_empty() {
                break;
            }
            let a = obs.admissible[rng.random_range(0..obs.admissible.len())].clone();
            let r = env.step(&a)?;
            if r.done || r.truncated {
                wins += usize::from(r.success);
                break;
            }
            obs = r.observation;
        }
    }
    Ok(wins as f32 / episodes.max(1) as f32)
}

impl<'a> SeedContext<'a> {
    /// The context of `seed` with its `offline` seed data: the task of `cfg`, the learner's
    /// settings with this seed, the vocabulary of the offline data; with `recording`, what the
    /// methods play is recorded (the offline data itself only by [`Self::record_offline`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: &'a RunConfig,
        factory: &'a EnvFactory,
        device: &'a SelectedDevice,
        seed: u64,
        offline: Vec<Trajectory>,
        progress: &'a Progress,
        recording: Option<Recording>,
    ) -> Self {
        let policy = TrainConfig {
            seed,
            iterations: cfg.iterations,
            ..cfg.policy.clone()
        };
        SeedContext {
            cfg,
            factory,
            spec: task_of(cfg),
            device,
            seed,
            vocab: vocab_of(&offline, &policy),
            offline,
            policy,
            models: Default::default(),
            progress,
            recording,
        }
    }

    /// At a checkpoint: records the episodes in play as abandoned and waits until everything
    /// recorded so far is durable; returns the log's length then (`None` when not recording).
    pub(crate) fn sync_recording(&self) -> Result<Option<u64>> {
        let Some(r) = &self.recording else {
            return Ok(None);
        };
        r.in_play.abandon_all();
        r.recorder.barrier().map(Some)
    }

    /// Real steps in the offline seed data.
    pub(crate) fn offline_steps(&self) -> u64 {
        steps_of(&self.offline)
    }
}

/// The task family `cfg` trains and evaluates on.
pub(crate) fn task_of(cfg: &RunConfig) -> TaskSpec {
    TaskSpec {
        template: cfg.template.clone(),
        difficulty: cfg.difficulty,
        posed: None,
    }
}

/// Collects `cfg.offline_episodes` offline seed episodes for `seed` (training instances, the
/// configured behaviour mix).
pub(crate) fn collect_offline(
    env: &mut dyn Env,
    cfg: &RunConfig,
    seed: u64,
    faults: &mut ExpertFaults,
) -> Result<Vec<Trajectory>> {
    let train = TaskSampler {
        spec: task_of(cfg),
        split: Split::Train,
    };
    collect_split(
        env,
        &train,
        cfg.offline_episodes,
        cfg.offline_mix,
        seed,
        cfg.max_expert_failure_share,
        faults,
    )
}

impl SeedContext<'_> {
    /// The native model fit on the offline data (with or without rule induction), fit once.
    pub(crate) fn model(&self, rules: bool) -> Result<Arc<dyn ExperienceModel>> {
        if let Some(m) = self.models.borrow().get(&rules) {
            return Ok(m.clone());
        }
        let model: Arc<dyn ExperienceModel> = match self.cfg.experience_model {
            ExperienceModelKind::Native => Arc::new(NativeModel::fit_with(&self.offline, rules)),
            ExperienceModelKind::Llm => {
                let mut cfg = LlmConfig::from_env().context("experience_model: Llm")?;
                cfg.reasoning = rules;
                Arc::new(LlmModel::new(cfg).context("experience_model: Llm")?)
            }
        };
        self.models.borrow_mut().insert(rules, model.clone());
        Ok(model)
    }

    /// The offline data followed by `fresh` real episodes: what sim-to-real's model update is
    /// fit on and retrieves from.
    pub(crate) fn with_offline(&self, fresh: &[Trajectory]) -> Vec<Trajectory> {
        self.offline.iter().chain(fresh).cloned().collect()
    }

    /// The experience model fit on `real` (sim-to-real's model update, with
    /// [`Self::with_offline`]; a native model is refit from scratch — measured in milliseconds
    /// per thousand transitions —, an LLM model is left as it is: its experience comes from its
    /// prompt).
    pub(crate) fn refit(&self, real: &[Trajectory]) -> Result<Arc<dyn ExperienceModel>> {
        match self.cfg.experience_model {
            ExperienceModelKind::Native => Ok(Arc::new(NativeModel::fit_with(real, true))),
            ExperienceModelKind::Llm => self.model(true),
        }
    }

    /// A fresh learner, behaviour-cloned on the offline data when the run says so.
    pub(crate) fn start(&self, force_bc: bool) -> Result<Trainer> {
        self.start_with_envs(force_bc, self.policy.num_envs)
    }

    /// [`Self::start`] for a learner that rolls out in `num_envs` envs per iteration (the
    /// synthetic phase uses `RunConfig::synthetic_envs`; in real envs it uses as many as it gets).
    pub(crate) fn start_with_envs(&self, force_bc: bool, num_envs: usize) -> Result<Trainer> {
        let cfg = TrainConfig {
            num_envs: num_envs.max(1),
            ..self.policy.clone()
        };
        let mut t = Trainer::new(cfg, self.vocab.clone(), self.device)?;
        if self.cfg.bc_warm_start || force_bc {
            t.behaviour_clone(&self.offline, self.cfg.bc_epochs, 64, 1e-3)?;
        }
        Ok(t)
    }

    pub(crate) fn evaluate(&self, trainer: &Trainer) -> Result<f32> {
        let held = TaskSampler {
            spec: self.spec.clone(),
            split: Split::HeldOut,
        };
        let mut env = self.factory.open();
        Ok(trainer
            .evaluate(
                env.as_mut(),
                &held,
                self.cfg.eval_episodes,
                false,
                self.seed ^ 0xe7a1,
            )?
            .success)
    }

    /// The loop's model envs: episodes start from the real initial states of `real` (and
    /// `extra_starts`), and retrieval reads `real`'s transitions (and, where `retrievable`
    /// admits synthetic ones, the episodes the envs finish, which go to the returned sink).
    fn model_envs(
        &self,
        model: Arc<dyn ExperienceModel>,
        real: &[Trajectory],
        extra_starts: &[(dreamgym_buffer::Task, Observation)],
        retrieval: bool,
        failures: &Arc<ModelFailures>,
    ) -> (Vec<Box<dyn Env>>, Option<RetainedEpisodes>) {
        // the real env's step limit, read off the offline data (random episodes run into it), so
        // the policy cannot learn to take longer in the model than the real env allows
        let max_steps = self
            .offline
            .iter()
            .map(|t| t.steps.len())
            .max()
            .unwrap_or(1)
            .max(1) as u32;
        // one index for the loop's envs
        let mode = if retrieval {
            self.cfg.retrieval
        } else {
            RetrievalMode::Off
        };
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
        let envs = (0..self.cfg.synthetic_envs.max(1))
            .map(|_| {
                let mut m = ModelEnv::with_retrieval(model.clone(), real, max_steps, index.clone());
                m.count_failures_in(failures.clone());
                m.set_uncertainty_penalty(self.cfg.uncertainty_penalty);
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

    /// Record what happens in the episodes of `env` (as the method set by [`Self::record_as`]),
    /// when the run records.
    pub(crate) fn recorded(&self, env: Box<dyn Env>, provenance: Provenance) -> Box<dyn Env> {
        self.recorded_with(env, provenance, &[])
    }

    /// [`Self::recorded`] with `extra` tags on every episode.
    fn recorded_with(
        &self,
        env: Box<dyn Env>,
        provenance: Provenance,
        extra: &[(String, String)],
    ) -> Box<dyn Env> {
        match &self.recording {
            Some(r) => Box::new(RecordingEnv::new(
                env,
                r.recorder.clone(),
                provenance,
                [
                    ("method".to_string(), r.method.borrow().clone()),
                    ("seed".to_string(), self.seed.to_string()),
                ]
                .into_iter()
                .chain(extra.iter().cloned())
                .collect(),
                r.clock.clone(),
                Some(&r.in_play),
            )),
            None => env,
        }
    }

    /// The method whose episodes are recorded from now on.
    pub(crate) fn record_as(&self, method: &str) {
        if let Some(r) = &self.recording {
            *r.method.borrow_mut() = method.to_string();
        }
    }

    /// Record the offline seed data (real trajectories).
    pub(crate) fn record_offline(&self) {
        if let Some(r) = &self.recording {
            for t in &self.offline {
                let tags = BTreeMap::from([
                    ("method".to_string(), "offline".to_string()),
                    ("seed".to_string(), self.seed.to_string()),
                ]);
                r.recorder.record(t.clone(), tags);
            }
        }
    }

    /// The synthetic-training loop: model envs, the curriculum and its RNG. `rules`: the native
    /// model's rule induction; `curriculum`: task selection by value and harder variants;
    /// `retrieval`: the model sees the real transitions of the task being played.
    pub(crate) fn synthetic_loop(
        &self,
        rules: bool,
        curriculum: bool,
        retrieval: bool,
    ) -> Result<SyntheticLoop> {
        self.synthetic_loop_in(self.model(rules)?, &self.offline, curriculum, retrieval)
    }

    /// [`Self::synthetic_loop`] in `model`, its episodes starting from the initial states of the
    /// real trajectories `real` and retrieval reading them (sim-to-real's model update: the
    /// offline data and the real episodes since).
    pub(crate) fn synthetic_loop_in(
        &self,
        model: Arc<dyn ExperienceModel>,
        real: &[Trajectory],
        curriculum: bool,
        retrieval: bool,
    ) -> Result<SyntheticLoop> {
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
            Some(g) => harder_starts(self.factory, g, &families, self.seed)?,
            None => vec![],
        };
        // a model that cannot answer stops the run within a window of steps, not at the end
        let failures = Arc::new(ModelFailures::with_limit(f64::from(
            self.cfg.max_model_failure_share,
        )));
        let (envs, retained) = self.model_envs(model, real, &starts, retrieval, &failures);
        Ok(SyntheticLoop {
            envs,
            pool: Curriculum::new(self.cfg.curriculum, families),
            generator,
            rng: ChaCha8Rng::seed_from_u64(self.seed ^ 0xc0ff),
            base: TaskSampler {
                spec: self.spec.clone(),
                split: Split::Any,
            },
            curriculum,
            expand_every: self.cfg.expand_every.max(1),
            batch: self.cfg.synthetic_envs.max(1).max(self.policy.groups),
            failures,
            clock: self.recording.as_ref().map(|r| r.clock.clone()),
            retained,
        })
    }

    /// Trains a fresh learner in the experience model for `cfg.iterations` iterations (see
    /// [`Self::synthetic_loop`] for the switches).
    pub(crate) fn train_synthetic(
        &self,
        rules: bool,
        curriculum: bool,
        retrieval: bool,
    ) -> Result<SyntheticRun> {
        let mut lp = self.synthetic_loop(rules, curriculum, retrieval)?;
        let mut trainer = self.start_with_envs(false, self.cfg.synthetic_envs)?;
        let mut recent: Vec<f32> = vec![];
        let mut steps = trainer.counters().env_steps;
        for i in 0..self.cfg.iterations {
            let m = lp.step(&mut trainer)?;
            self.progress
                .iteration(i + 1, self.cfg.iterations, m.env_steps - steps);
            steps = m.env_steps;
            recent.push(m.success);
        }
        let pool = &lp.pool;
        let pool_json = pool
            .tasks()
            .iter()
            .map(|t| serde_json::json!({"task": t.variant, "origin": t.origin, "mean": t.mean(), "value": t.value()}))
            .collect();
        let failures = lp.failures.counts();
        check_failures(&failures, self.cfg.max_model_failure_share)?;
        let tail = &recent[recent.len().saturating_sub(5)..];
        Ok(SyntheticRun {
            failures,
            model_success: tail.iter().sum::<f32>() / tail.len().max(1) as f32,
            pool: pool_json,
            synthetic_steps: trainer.counters().env_steps,
            history: pool.history().to_vec(),
            rejected: pool.rejected(),
            trainer,
        })
    }

    /// Tells the recording that `trainer`'s next iteration acts now (the `iteration` tag of the
    /// real episodes it plays).
    pub(crate) fn tell_recording(&self, trainer: &Trainer) {
        if let Some(r) = &self.recording {
            let next = trainer.counters().iteration as u64 + 1;
            r.clock.store(next, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Prepares `trainer` (trained in the model) for `iterations` of sim-to-real: a fresh
    /// learning-rate schedule over them, peaking at `s2r_lr_scale` x `policy.lr`.
    pub(crate) fn begin_sim_to_real(&self, trainer: &mut Trainer, iterations: usize) {
        trainer.extend(iterations);
        trainer.set_learning_rate(self.policy.lr * self.cfg.s2r_lr_scale);
    }

    /// Trains `trainer` for `iterations` iterations in the real env (training instances; set
    /// its schedule first with `Trainer::extend` or [`Self::begin_sim_to_real`]); returns
    /// (online real steps so far in this call, training success) per iteration. With `capture`,
    /// the episodes played there are handed to it too.
    pub(crate) fn train_real(
        &self,
        trainer: &mut Trainer,
        iterations: usize,
        capture: Option<&Recorder>,
    ) -> Result<Vec<(u64, f32)>> {
        let mut envs: Vec<Box<dyn Env>> = (0..self.policy.num_envs)
            .map(|_| {
                let env = self.recorded(self.factory.open(), Provenance::Real);
                match capture {
                    Some(c) => Box::new(RecordingEnv::new(
                        env,
                        c.clone(),
                        Provenance::Real,
                        BTreeMap::new(),
                        IterationClock::default(),
                        None,
                    )) as Box<dyn Env>,
                    None => env,
                }
            })
            .collect();
        let sampler = TaskSampler {
            spec: self.spec.clone(),
            split: Split::Train,
        };
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
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dreamgym_sim::model::retrieval::Retrievable;

    /// A keys_doors loop with `retrievable`, two iterations in: the transitions its retrieval
    /// index holds before and after.
    fn indexed_after_two_iterations(retrievable: Retrievable) -> (usize, usize) {
        let factory = EnvFactory::new("scenario:scenarios/keys_doors.ron", None).unwrap();
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
        let device = dreamgym_policy::select_device(dreamgym_policy::BackendChoice::Cpu).unwrap();
        let progress = Progress::silent();
        let offline = collect_offline(
            factory.open().as_mut(),
            &cfg,
            1,
            &mut ExpertFaults::default(),
        )
        .unwrap();
        let ctx = SeedContext::new(&cfg, &factory, &device, 1, offline, &progress, None);
        let mut lp = ctx.synthetic_loop(true, false, true).unwrap();
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
