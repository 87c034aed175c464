//! `dreamgym run`: the whole DreamGym job on one environment, for several seeds — offline seed
//! data, the native experience model, curriculum-driven training in the model, sim-to-real, the
//! real-only and behaviour-cloning baselines, ablations, held-out evaluation — and the numbers the
//! report is made of.

use crate::envs::EnvFactory;
use crate::progress::Progress;
use crate::recorder::Recorder;
use crate::recording_env::{IterationClock, RecordingEnv};
use crate::ron_file::RangeError;
use crate::task_families::{BRIDGE_MAX_DIFFICULTY, Families, harder_starts, offline_families};
use anyhow::{Context, Result};
use dreamgym_buffer::{Observation, Provenance, Trajectory};
use dreamgym_curriculum::{Curriculum, CurriculumConfig, DifficultyPoint};
use dreamgym_policy::{SelectedDevice, Split, TaskSampler, TrainConfig, Trainer, Vocab};
use dreamgym_sim::model::env::{FailureCounts, ModelEnv, ModelFailures};
use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
use dreamgym_sim::model::native::NativeModel;
use dreamgym_sim::model::retrieval::{Retrieval, RetrievalMode};
use dreamgym_sim::model::{ExperienceModel, fidelity};
use dreamgym_sim::policy::{BehaviourPolicy, collect_episode};
use dreamgym_sim::{Env, TaskSpec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Shares of the offline seed data by behaviour policy (normalised).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OfflineMix {
    /// Expert demonstrations.
    pub expert: f32,
    /// Noisy expert (random action with probability `noise`).
    pub noisy: f32,
    /// Uniformly random exploration.
    pub random: f32,
    /// The noisy expert's epsilon.
    pub noise: f64,
}

impl Default for OfflineMix {
    fn default() -> Self {
        Self {
            expert: 0.2,
            noisy: 0.4,
            random: 0.4,
            noise: 0.3,
        }
    }
}

/// Which experience model a run trains in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExperienceModelKind {
    /// The native reasoning model, fit on the offline seed data (no LLM needed).
    #[default]
    Native,
    /// An OpenAI-compatible chat-completions server, configured by `DREAMGYM_LLM_URL`,
    /// `DREAMGYM_LLM_MODEL` and `DREAMGYM_LLM_KEY` (see `dreamgym_sim::model::llm`); the
    /// "without reasoning" ablation drops its reasoning field.
    Llm,
}

/// Settings of `dreamgym run` (RON; every field optional; these defaults are embedded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Task template (None: all).
    pub template: Option<String>,
    /// Difficulty trained and evaluated on.
    pub difficulty: Option<u32>,
    /// Seeds (each runs every method).
    pub seeds: Vec<u64>,
    /// Offline seed episodes (real, on training instances).
    pub offline_episodes: usize,
    /// Their behaviour mix.
    pub offline_mix: OfflineMix,
    /// The learner (the same for every method).
    pub policy: TrainConfig,
    /// The experience model trained in.
    pub experience_model: ExperienceModelKind,
    /// What the model is shown of the real data while an instance is played (`Instance`: that
    /// instance's real transitions; `Similar`: those, then the most similar other instances';
    /// `Off`; the "without retrieval" ablation is always `Off`).
    pub retrieval: RetrievalMode,
    /// Policy iterations in the experience model (and for the real-only baseline).
    pub iterations: usize,
    /// Model envs rolled out per iteration in the experience model (the real env uses
    /// `policy.num_envs`): synthetic experience is cheap, so each update can see more of it —
    /// the number of policy updates stays the same.
    pub synthetic_envs: usize,
    /// Sim-to-real budget as a share of the real-only baseline's real steps.
    pub s2r_share: f32,
    /// Sim-to-real learning rate as a share of `policy.lr` (fine-tuning a policy trained in the
    /// model on a small real budget; its schedule anneals over the S2R iterations).
    pub s2r_lr_scale: f64,
    /// The curriculum.
    pub curriculum: CurriculumConfig,
    /// Expand the curriculum pool every this many iterations.
    pub expand_every: usize,
    /// Held-out evaluation episodes per method and seed.
    pub eval_episodes: usize,
    /// Real held-out episodes used only to measure the model's fidelity.
    pub fidelity_episodes: usize,
    /// Run the ablations (without retrieval, without reasoning, without curriculum).
    pub ablations: bool,
    /// Points on each learning curve.
    pub curve_points: usize,
    /// Behaviour-clone the successful offline episodes before RL (every RL method starts there,
    /// real_only included; `offline_bc` is that starting point evaluated as it is).
    pub bc_warm_start: bool,
    /// Behaviour-cloning epochs.
    pub bc_epochs: usize,
    /// Largest share of the experience model's steps that may fail (rejected replies, states
    /// without an admissible action) before a training run in it is stopped as an error; above
    /// 5% a warning says so.
    pub max_model_failure_share: f32,
}

impl RunConfig {
    /// Checks every setting's range (NaN and infinities included); the first one outside is
    /// the error.
    pub fn validate(&self) -> Result<(), RangeError> {
        let bad = |field: &str, value: String, allowed: &str| {
            Err(RangeError {
                field: field.into(),
                value,
                allowed: allowed.into(),
            })
        };
        let share = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        let mix = &self.offline_mix;
        for (field, x) in [
            ("offline_mix.expert", mix.expert),
            ("offline_mix.noisy", mix.noisy),
            ("offline_mix.random", mix.random),
        ] {
            if !(x.is_finite() && x >= 0.0) {
                return bad(field, x.to_string(), "a finite share >= 0");
            }
        }
        if mix.expert + mix.noisy + mix.random <= 0.0 {
            return bad(
                "offline_mix",
                "all zero".into(),
                "at least one share above 0",
            );
        }
        if !share(mix.noise) {
            return bad(
                "offline_mix.noise",
                mix.noise.to_string(),
                "a probability in [0, 1]",
            );
        }
        if !share(f64::from(self.max_model_failure_share)) {
            return bad(
                "max_model_failure_share",
                self.max_model_failure_share.to_string(),
                "a share in [0, 1]",
            );
        }
        if !share(f64::from(self.s2r_share)) {
            return bad(
                "s2r_share",
                self.s2r_share.to_string(),
                "a share of real_only's real steps in [0, 1]",
            );
        }
        if !(self.s2r_lr_scale.is_finite() && self.s2r_lr_scale > 0.0 && self.s2r_lr_scale <= 10.0)
        {
            return bad(
                "s2r_lr_scale",
                self.s2r_lr_scale.to_string(),
                "a share of policy.lr in (0, 10]",
            );
        }
        for (field, n) in [
            ("iterations", self.iterations),
            ("synthetic_envs", self.synthetic_envs),
            ("eval_episodes", self.eval_episodes),
            ("expand_every", self.expand_every),
            ("curve_points", self.curve_points),
        ] {
            if n == 0 {
                return bad(field, "0".into(), "at least 1");
            }
        }
        if self.offline_episodes == 0 {
            return bad(
                "offline_episodes",
                "0".into(),
                "at least 1 (the experience model is fit on them)",
            );
        }
        if self.seeds.is_empty() {
            return bad(
                "seeds",
                "[]".into(),
                "at least one seed (three for confidence intervals)",
            );
        }
        if let Err(e) = self.policy.validate() {
            return bad("policy", e, "a valid learner configuration");
        }
        Ok(())
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            template: None,
            difficulty: Some(1),
            seeds: vec![1, 2, 3],
            offline_episodes: 200,
            offline_mix: OfflineMix::default(),
            policy: TrainConfig {
                lr: 1e-3,
                num_steps: 64,
                ..TrainConfig::default()
            },
            experience_model: ExperienceModelKind::Native,
            retrieval: RetrievalMode::Instance,
            iterations: 60,
            synthetic_envs: 16,
            s2r_share: 0.1,
            s2r_lr_scale: 0.3,
            curriculum: CurriculumConfig::default(),
            expand_every: 5,
            eval_episodes: 100,
            fidelity_episodes: 40,
            ablations: true,
            curve_points: 12,
            bc_warm_start: true,
            bc_epochs: 20,
            max_model_failure_share: 0.5,
        }
    }
}

/// One method on one seed.
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    /// Seed.
    pub seed: u64,
    /// Held-out success.
    pub success: f32,
    /// Online real interactions.
    pub real_steps: u64,
    /// Real steps in the offline seed data.
    pub offline_steps: u64,
    /// Steps in the experience model.
    pub synthetic_steps: u64,
    /// (real steps so far, training success) along the way.
    pub curve: Vec<(u64, f32)>,
    /// For methods trained in the experience model: training success inside the model over the
    /// last 5 iterations (against `success` in the real env: the sim-to-real gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_success: Option<f32>,
    /// For methods trained in the experience model: steps it could not use (rejected replies,
    /// dead-end states), which ended their synthetic episodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_failures: Option<FailureCounts>,
}

/// A method over all seeds.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSummary {
    /// Mean held-out success over seeds.
    pub success: f32,
    /// 95% confidence interval (Student t over seeds), clipped to [0, 1].
    pub ci_low: f32,
    /// Upper end.
    pub ci_high: f32,
    /// Mean online real interactions.
    pub real_steps: u64,
    /// Mean real steps in the offline seed data.
    pub offline_steps: u64,
    /// Mean synthetic steps.
    pub synthetic_steps: u64,
    /// Per seed.
    pub seeds: Vec<SeedResult>,
}

/// Two-sided 97.5% Student t quantiles for 1..=30 degrees of freedom.
const T975: [f32; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// Mean and 95% t-interval of `xs` (a single value gets a zero-width interval).
pub fn mean_ci(xs: &[f32]) -> (f32, f32, f32) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let mean = xs.iter().sum::<f32>() / n as f32;
    if n == 1 {
        return (mean, mean, mean);
    }
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / (n - 1) as f32).sqrt();
    let t = T975[(n - 2).min(T975.len() - 1)];
    let half = t * sd / (n as f32).sqrt();
    (mean, (mean - half).max(0.0), (mean + half).min(1.0))
}

fn summarise(results: Vec<SeedResult>) -> MethodSummary {
    let s: Vec<f32> = results.iter().map(|r| r.success).collect();
    let (success, ci_low, ci_high) = mean_ci(&s);
    let n = results.len().max(1) as u64;
    MethodSummary {
        success,
        ci_low,
        ci_high,
        real_steps: results.iter().map(|r| r.real_steps).sum::<u64>() / n,
        offline_steps: results.iter().map(|r| r.offline_steps).sum::<u64>() / n,
        synthetic_steps: results.iter().map(|r| r.synthetic_steps).sum::<u64>() / n,
        seeds: results,
    }
}

/// Collects `n` episodes on instances of `sampler`'s split with the configured behaviour mix.
pub fn collect_split(
    env: &mut dyn Env,
    sampler: &TaskSampler,
    n: usize,
    mix: OfflineMix,
    seed: u64,
) -> Result<Vec<Trajectory>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let total = (mix.expert + mix.noisy + mix.random).max(1e-6);
    let mut out = Vec::with_capacity(n);
    // instances the expert cannot solve are skipped (another is drawn), as `collect` does; a
    // family where it solves almost none is an error, not an endless loop
    let mut skipped = 0;
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
            match collect_episode(env, &sampler.spec, instance, policy, &mut rng) {
                Ok(t) => {
                    out.push(t);
                    break;
                }
                Err(dreamgym_sim::EnvError::NoPlan { .. }) if skipped < 10 * n.max(1) => {
                    skipped += 1;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("collecting offline episode {i} ({skipped} unsolvable instances skipped before)")
                    });
                }
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(
            "offline data: skipped {skipped} instances the expert could not solve (`dreamgym scenario check --expert N` shows where)"
        );
    }
    Ok(out)
}

fn round3(x: f32) -> f64 {
    (x as f64 * 1000.0).round() / 1000.0
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

fn curve_of(rows: &[(u64, f32)], points: usize) -> Vec<(u64, f32)> {
    if rows.len() <= points.max(2) {
        return rows.to_vec();
    }
    let step = rows.len() as f32 / points as f32;
    (0..points)
        .map(|i| {
            let end = (((i + 1) as f32 * step) as usize).min(rows.len());
            let start = ((i as f32 * step) as usize).min(end.saturating_sub(1));
            let chunk = &rows[start..end];
            let mean = chunk.iter().map(|r| r.1).sum::<f32>() / chunk.len() as f32;
            (chunk[chunk.len() - 1].0, mean)
        })
        .collect()
}

/// What one seed of the synthetic training produced.
struct SyntheticRun {
    /// Training success inside the model over the last 5 iterations.
    model_success: f32,
    failures: FailureCounts,
    pool: Vec<serde_json::Value>,
    trainer: Trainer,
    synthetic_steps: u64,
    history: Vec<DifficultyPoint>,
    rejected: usize,
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
}

impl SyntheticLoop {
    /// One policy iteration in the model, then the curriculum update.
    pub(crate) fn step(
        &mut self,
        trainer: &mut Trainer,
    ) -> Result<dreamgym_policy::IterationMetrics> {
        let round = trainer.counters().iteration + 1;
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

/// A run's recording: the recorder, the method being trained (a tag of every episode) and the
/// policy iteration acting.
pub(crate) struct Recording {
    recorder: Recorder,
    method: std::cell::RefCell<String>,
    clock: IterationClock,
}

impl Recording {
    /// Record to `recorder`.
    pub(crate) fn new(recorder: Recorder) -> Self {
        Self {
            recorder,
            method: Default::default(),
            clock: Default::default(),
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

    fn model_envs(
        &self,
        model: Arc<dyn ExperienceModel>,
        extra_starts: &[(dreamgym_buffer::Task, Observation)],
        retrieval: bool,
        failures: &Arc<ModelFailures>,
    ) -> Vec<Box<dyn Env>> {
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
        let index = Arc::new(Retrieval::new(&self.offline, mode));
        (0..self.cfg.synthetic_envs.max(1))
            .map(|_| {
                let mut m = ModelEnv::with_retrieval(
                    model.clone(),
                    &self.offline,
                    max_steps,
                    index.clone(),
                );
                m.count_failures_in(failures.clone());
                for (t, o) in extra_starts {
                    m.add_start(t.clone(), o.clone());
                }
                self.recorded(Box::new(m), Provenance::Synthetic)
            })
            .collect()
    }

    /// Record what happens in the episodes of `env` (as the method set by [`Self::record_as`]),
    /// when the run records.
    fn recorded(&self, env: Box<dyn Env>, provenance: Provenance) -> Box<dyn Env> {
        match &self.recording {
            Some(r) => Box::new(RecordingEnv::new(
                env,
                r.recorder.clone(),
                provenance,
                BTreeMap::from([
                    ("method".to_string(), r.method.borrow().clone()),
                    ("seed".to_string(), self.seed.to_string()),
                ]),
                r.clock.clone(),
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
    fn record_offline(&self) {
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
        let model: Arc<dyn ExperienceModel> = self.model(rules)?;
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
        let failures = Arc::new(ModelFailures::default());
        let envs = self.model_envs(model, &starts, retrieval, &failures);
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
        })
    }

    fn train_synthetic(
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

    pub(crate) fn train_real(
        &self,
        trainer: &mut Trainer,
        iterations: usize,
        real_offset: u64,
    ) -> Result<Vec<(u64, f32)>> {
        let mut envs: Vec<Box<dyn Env>> = (0..self.policy.num_envs)
            .map(|_| self.recorded(self.factory.open(), Provenance::Real))
            .collect();
        let sampler = TaskSampler {
            spec: self.spec.clone(),
            split: Split::Train,
        };
        let start_steps = trainer.counters().env_steps;
        trainer.extend(iterations);
        let mut rows = vec![];
        let mut steps = start_steps;
        while !trainer.finished() {
            if let Some(r) = &self.recording {
                let next = trainer.counters().iteration as u64 + 1;
                r.clock.store(next, std::sync::atomic::Ordering::Relaxed);
            }
            let m = trainer.iterate(&mut envs, &sampler)?;
            rows.push((real_offset + m.env_steps - start_steps, m.success));
            self.progress
                .iteration(rows.len(), iterations, m.env_steps - steps);
            steps = m.env_steps;
        }
        Ok(rows)
    }
}

/// The numbers of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Env id.
    pub env: String,
    /// Settings.
    pub config: RunConfig,
    /// Backend used.
    pub backend: String,
    /// Offline seed data: episodes, real steps and mix.
    pub offline: serde_json::Value,
    /// Methods keyed `real_only`, `offline_bc`, `dreamgym`, `dreamgym_s2r`, the ablations, and
    /// `random` (a uniformly random policy, for reference).
    pub methods: BTreeMap<String, MethodSummary>,
    /// Fidelity of the native model (fit on seed 1's offline data, real held-out episodes).
    pub fidelity: serde_json::Value,
    /// Curriculum difficulty per iteration (first seed).
    pub curriculum: Vec<DifficultyPoint>,
    /// Generated variants the feasibility check rejected (first seed).
    pub curriculum_rejected: usize,
    /// The final task pool with recent mean outcome and value (first seed).
    pub curriculum_pool: Vec<serde_json::Value>,
    /// Notes on what was not run and why.
    pub notes: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// False while seeds are still running: `dreamgym run` writes the summary after every seed,
    /// so an interrupted run keeps the seeds it finished.
    pub complete: bool,
    /// The seeds whose results the methods hold.
    pub seeds_done: Vec<u64>,
}

/// About how many policy iterations a run of `cfg` takes in all (for the progress ETA): per seed,
/// dreamgym and real_only run `iterations` each, sim-to-real `s2r_share` of that, and each of the
/// three ablations `iterations` again.
pub fn planned_iterations(cfg: &RunConfig) -> u64 {
    let per_seed = cfg.iterations as f64
        * (2.0 + f64::from(cfg.s2r_share.clamp(0.0, 1.0)) + if cfg.ablations { 3.0 } else { 0.0 });
    (per_seed * cfg.seeds.len() as f64).round() as u64
}

/// Runs every method on every seed. `progress` is told what is happening; `seed_done` gets the
/// summary so far (`complete: false`) after each seed but the last.
pub fn run(
    env_id: &str,
    cfg: &RunConfig,
    device: &SelectedDevice,
    progress: &Progress,
    recorder: Option<&Recorder>,
    seed_done: &mut dyn FnMut(&RunSummary) -> Result<()>,
) -> Result<RunSummary> {
    let started = std::time::Instant::now();
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("run settings: {e}"))?;
    let factory = EnvFactory::new(env_id, None)?;
    let spec = TaskSpec {
        template: cfg.template.clone(),
        difficulty: cfg.difficulty,
        posed: None,
    };
    let mut results: BTreeMap<String, Vec<SeedResult>> = BTreeMap::new();
    let mut notes = vec![format!(
        "retrieval ({:?}): the model env passes the native model the real transitions of the task instance being played (up to 64){}; dreamgym_without_retrieval passes none",
        cfg.retrieval,
        if cfg.retrieval == RetrievalMode::Similar {
            ", then those of the most similar other instances"
        } else {
            ""
        }
    )];
    if factory.scenario().is_none() {
        notes.push(format!("curriculum variants of a bridged env: its adapter's difficulty knob, levels 2 to {BRIDGE_MAX_DIFFICULTY} above the env as named (docs/bridge.md); a level enters the pool when the env's expert solves 3 instances of it"));
    }
    let mut offline_total = (0usize, 0u64);
    // the summary so far: written after every seed, returned after the last
    let mut summary = RunSummary {
        env: env_id.to_string(),
        config: cfg.clone(),
        backend: device.kind.to_string(),
        offline: serde_json::Value::Null,
        methods: BTreeMap::new(),
        fidelity: serde_json::Value::Null,
        curriculum: vec![],
        curriculum_rejected: 0,
        curriculum_pool: vec![],
        notes,
        seconds: 0.0,
        complete: false,
        seeds_done: vec![],
    };
    for (k, &seed) in cfg.seeds.iter().enumerate() {
        let policy = TrainConfig {
            seed,
            iterations: cfg.iterations,
            ..cfg.policy.clone()
        };
        let mut env = factory.open();
        progress.phase(&format!(
            "seed {seed}: collecting {} offline episodes",
            cfg.offline_episodes
        ));
        let train_split = TaskSampler {
            spec: spec.clone(),
            split: Split::Train,
        };
        let offline = collect_split(
            env.as_mut(),
            &train_split,
            cfg.offline_episodes,
            cfg.offline_mix,
            seed,
        )?;
        let offline_steps = steps_of(&offline);
        offline_total = (
            offline_total.0 + offline.len(),
            offline_total.1 + offline_steps,
        );
        let vocab = vocab_of(&offline, &policy);
        let ctx = SeedContext {
            cfg,
            factory: &factory,
            spec: spec.clone(),
            device,
            seed,
            offline,
            vocab,
            policy: policy.clone(),
            models: Default::default(),
            progress,
            recording: recorder.map(|r| Recording::new(r.clone())),
        };
        ctx.record_offline();

        if k == 0 && cfg.fidelity_episodes > 0 {
            progress.phase("measuring the experience model's fidelity on real held-out episodes");
            let held = TaskSampler {
                spec: spec.clone(),
                split: Split::HeldOut,
            };
            let heldout = collect_split(
                env.as_mut(),
                &held,
                cfg.fidelity_episodes,
                cfg.offline_mix,
                seed ^ 0xf1d,
            )?;
            let model = ctx.model(true)?;
            summary.fidelity = serde_json::to_value(fidelity::evaluate(
                model.as_ref(),
                &ctx.offline,
                &heldout,
                0.99,
            ))?;
        }

        let floor = random_success(
            env.as_mut(),
            &spec,
            cfg.eval_episodes,
            policy.max_episode_steps,
            seed ^ 0xe7a1,
        )?;
        results
            .entry("random".into())
            .or_default()
            .push(SeedResult {
                seed,
                success: floor,
                real_steps: 0,
                offline_steps: 0,
                synthetic_steps: 0,
                curve: vec![],
                model_success: None,
                model_failures: None,
            });

        progress.phase(&format!(
            "seed {seed}: dreamgym (training in the experience model)"
        ));
        ctx.record_as("dreamgym");
        let synth = ctx.train_synthetic(true, true, true)?;
        if k == 0 {
            summary.curriculum = synth.history.clone();
            summary.curriculum_rejected = synth.rejected;
            summary.curriculum_pool = synth.pool.clone();
        }
        let mut trainer = synth.trainer;
        let dg_success = ctx.evaluate(&trainer)?;
        results
            .entry("dreamgym".into())
            .or_default()
            .push(SeedResult {
                seed,
                success: dg_success,
                real_steps: 0,
                offline_steps,
                synthetic_steps: synth.synthetic_steps,
                curve: vec![(0, dg_success)],
                model_success: Some(synth.model_success),
                model_failures: Some(synth.failures),
            });

        progress.phase(&format!("seed {seed}: real_only baseline"));
        ctx.record_as("real_only");
        let mut real_only = ctx.start(false)?;
        let rows = ctx.train_real(&mut real_only, cfg.iterations, 0)?;
        let real_steps = real_only.counters().env_steps;
        results
            .entry("real_only".into())
            .or_default()
            .push(SeedResult {
                seed,
                success: ctx.evaluate(&real_only)?,
                real_steps,
                offline_steps: 0,
                synthetic_steps: 0,
                curve: curve_of(&rows, cfg.curve_points),
                model_success: None,
                model_failures: None,
            });

        progress.phase(&format!("seed {seed}: dreamgym_s2r (sim-to-real)"));
        let per_iter = (policy.num_envs * policy.num_steps) as f32;
        let s2r_iters = ((cfg.s2r_share * real_steps as f32) / per_iter)
            .floor()
            .max(1.0) as usize;
        let mut rows = vec![(0, dg_success)];
        trainer.set_learning_rate(policy.lr * cfg.s2r_lr_scale);
        ctx.record_as("dreamgym_s2r");
        rows.extend(ctx.train_real(&mut trainer, s2r_iters, 0)?);
        results
            .entry("dreamgym_s2r".into())
            .or_default()
            .push(SeedResult {
                seed,
                success: ctx.evaluate(&trainer)?,
                real_steps: trainer.counters().env_steps - synth.synthetic_steps,
                offline_steps,
                synthetic_steps: synth.synthetic_steps,
                curve: rows,
                model_success: None,
                model_failures: None,
            });

        progress.phase(&format!("seed {seed}: offline_bc baseline"));
        let bc = ctx.start(true)?;
        results
            .entry("offline_bc".into())
            .or_default()
            .push(SeedResult {
                seed,
                success: ctx.evaluate(&bc)?,
                real_steps: 0,
                offline_steps,
                synthetic_steps: 0,
                curve: vec![],
                model_success: None,
                model_failures: None,
            });

        if cfg.ablations {
            for (name, rules, curriculum, retrieval) in [
                ("dreamgym_without_retrieval", true, true, false),
                ("dreamgym_without_reasoning", false, true, true),
                ("dreamgym_without_curriculum", true, false, true),
            ] {
                progress.phase(&format!("seed {seed}: ablation {name}"));
                ctx.record_as(name);
                let run = ctx.train_synthetic(rules, curriculum, retrieval)?;
                results.entry(name.into()).or_default().push(SeedResult {
                    seed,
                    success: ctx.evaluate(&run.trainer)?,
                    real_steps: 0,
                    offline_steps,
                    synthetic_steps: run.synthetic_steps,
                    curve: vec![],
                    model_success: Some(run.model_success),
                    model_failures: Some(run.failures),
                });
            }
        }
        summary.seeds_done.push(seed);
        summary.update(&results, offline_total, started);
        if !summary.complete {
            seed_done(&summary)?;
        }
    }
    Ok(summary)
}

impl RunSummary {
    /// Brings the figures up to date with `results` of the seeds done so far.
    fn update(
        &mut self,
        results: &BTreeMap<String, Vec<SeedResult>>,
        offline_total: (usize, u64),
        started: std::time::Instant,
    ) {
        let n = self.seeds_done.len().max(1);
        let mix = self.config.offline_mix;
        self.offline = serde_json::json!({
            "episodes_per_seed": offline_total.0 / n,
            "real_steps_per_seed": offline_total.1 / n as u64,
            "mix": {"expert": round3(mix.expert), "noisy_expert": round3(mix.noisy), "random": round3(mix.random), "noise": mix.noise},
            "instances": "training split only (fold != 0)",
        });
        self.methods = results
            .iter()
            .map(|(k, v)| (k.clone(), summarise(v.clone())))
            .collect();
        self.seconds = started.elapsed().as_secs_f64();
        self.complete = self.seeds_done.len() == self.config.seeds.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_defaults_file_is_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/run-defaults.ron");
        let text = std::fs::read_to_string(path).unwrap();
        let parsed: RunConfig = ron::from_str(&text).unwrap();
        assert_eq!(parsed, RunConfig::default());
    }

    #[test]
    fn a_partial_loss_block_keeps_the_other_defaults() {
        let c: RunConfig = ron::from_str("(policy: (loss: (ent_coef: 0.02)))").unwrap();
        assert_eq!(c.policy.loss.ent_coef, 0.02);
        assert_eq!(
            c.policy.loss,
            dreamgym_policy::loss::LossConfig {
                ent_coef: 0.02,
                ..Default::default()
            }
        );
        assert!(ron::from_str::<RunConfig>("(policy: (loss: (entropy: 0.02)))").is_err());
    }

    #[test]
    fn confidence_intervals_follow_student_t() {
        let (m, lo, hi) = mean_ci(&[0.5, 0.6, 0.7]);
        assert!((m - 0.6).abs() < 1e-6);
        // sd 0.1, t(2) 4.303, half = 0.2484
        assert!(
            (hi - m - 0.2484).abs() < 1e-3 && (m - lo - 0.2484).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(mean_ci(&[1.0, 1.0, 1.0]), (1.0, 1.0, 1.0));
        let (_, lo, hi) = mean_ci(&[0.0, 1.0]);
        assert_eq!((lo, hi), (0.0, 1.0), "clipped to [0, 1]");
    }

    #[test]
    fn curves_are_averaged_into_points() {
        let rows: Vec<(u64, f32)> = (1..=100)
            .map(|i| (i * 10, if i > 50 { 1.0 } else { 0.0 }))
            .collect();
        let c = curve_of(&rows, 10);
        assert_eq!(c.len(), 10);
        assert_eq!(c[0], (100, 0.0));
        assert_eq!(c[9], (1000, 1.0));
    }
}
