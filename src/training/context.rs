//! What every method of a comparison shares on one seed (`SeedContext`): the offline seed
//! data, the vocabulary, the experience models fit on it, the env, evaluation and the
//! recording; the learner's start (behaviour-cloned or fresh).

use crate::record::env::{InPlay, IterationClock, RecordingEnv};
use crate::record::recorder::Recorder;
use crate::support::envs::EnvFactory;
use crate::support::progress::Progress;
use crate::training::config::{ExperienceModelKind, RunConfig, task_of};
use crate::training::offline::steps_of;
use anyhow::{Context, Result};
use dreamgym_buffer::{Observation, Provenance, Trajectory};
use dreamgym_policy::{SelectedDevice, TaskSampler, TrainConfig, Trainer, Vocab};
use dreamgym_sim::model::ExperienceModel;
use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
use dreamgym_sim::model::native::NativeModel;
use dreamgym_sim::{Env, TaskSpec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn vocab_of(ts: &[Trajectory], cfg: &TrainConfig) -> Vocab {
    let obs: Vec<&Observation> = ts
        .iter()
        .flat_map(|t| t.steps.iter().flat_map(|s| [&s.state, &s.next_state]))
        .collect();
    Vocab::build(obs, cfg.vocab_max_words, 1, cfg.vocab_oov_buckets)
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
    pub(crate) clock: IterationClock,
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
    held: &TaskSampler,
    episodes: usize,
    max_steps: usize,
    seed: u64,
) -> Result<f32> {
    use rand::RngExt;
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

/// `env` (a real env) with its episodes handed to `capture` as well (an in-memory recorder:
/// sim-to-real's real episodes, the evaluation's episodes).
pub(crate) fn captured(env: Box<dyn Env>, capture: &Recorder) -> Box<dyn Env> {
    Box::new(RecordingEnv::new(
        env,
        capture.clone(),
        Provenance::Real,
        BTreeMap::new(),
        IterationClock::default(),
        None,
    ))
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

    /// Real steps one policy iteration costs, where a real budget is turned into iterations
    /// (`TrainConfig::steps_per_iteration`; GRPO's episodes taken as long as the offline data's
    /// on average).
    pub(crate) fn steps_per_iteration(&self) -> f64 {
        let mean = self.offline_steps() as f64 / self.offline.len().max(1) as f64;
        self.policy.steps_per_iteration(mean)
    }
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
        self.evaluate_in(trainer, self.factory.open().as_mut())
    }

    /// [`Self::evaluate`] in `env`.
    fn evaluate_in(&self, trainer: &Trainer, env: &mut dyn Env) -> Result<f32> {
        let held = TaskSampler::of(self.spec.clone(), self.cfg.eval_split());
        Ok(trainer
            .evaluate(
                env,
                &held,
                self.cfg.eval_episodes,
                false,
                self.seed ^ 0xe7a1,
            )?
            .success)
    }

    /// [`Self::evaluate`], also returning the evaluation episodes played (the same episodes:
    /// capturing them changes nothing the policy or the env sees), for scoring the experience
    /// model on the trained policy's own states (on-policy fidelity, no extra real steps).
    pub(crate) fn evaluate_episodes(&self, trainer: &Trainer) -> Result<(f32, Vec<Trajectory>)> {
        let capture = Recorder::in_memory();
        let mut env = captured(self.factory.open(), &capture);
        let success = self.evaluate_in(trainer, env.as_mut())?;
        // dropped: an episode the evaluation cut is handed over too
        drop(env);
        Ok((success, capture.take()))
    }

    /// Record what happens in the episodes of `env` (as the method set by [`Self::record_as`]),
    /// when the run records.
    pub(crate) fn recorded(&self, env: Box<dyn Env>, provenance: Provenance) -> Box<dyn Env> {
        self.recorded_with(env, provenance, &[])
    }

    /// [`Self::recorded`] with `extra` tags on every episode.
    pub(crate) fn recorded_with(
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

    /// Tells the recording that `trainer`'s next iteration acts now (the `iteration` tag of the
    /// real episodes it plays).
    pub(crate) fn tell_recording(&self, trainer: &Trainer) {
        if let Some(r) = &self.recording {
            let next = trainer.counters().iteration as u64 + 1;
            r.clock.store(next, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// What a unit test needs for a [`SeedContext`] on keys_doors (level 1): the env factory, the
/// CPU device, a silent progress and `cfg.offline_episodes` offline episodes (seed 1).
#[cfg(test)]
pub(crate) struct KeysDoorsFixture {
    factory: EnvFactory,
    device: SelectedDevice,
    progress: Progress,
    offline: Vec<Trajectory>,
}

#[cfg(test)]
impl KeysDoorsFixture {
    /// The fixture, its offline data collected as `cfg` says.
    pub(crate) fn new(cfg: &RunConfig) -> Self {
        let factory = EnvFactory::new("scenario:scenarios/keys_doors.ron", None).unwrap();
        let device = dreamgym_policy::select_device(dreamgym_policy::BackendChoice::Cpu).unwrap();
        let offline = crate::training::offline::collect_offline(
            factory.open().as_mut(),
            cfg,
            1,
            &mut dreamgym_sim::policy::ExpertFaults::default(),
        )
        .unwrap();
        Self {
            factory,
            device,
            progress: Progress::silent(),
            offline,
        }
    }

    /// The env factory.
    pub(crate) fn factory(&self) -> &EnvFactory {
        &self.factory
    }

    /// Seed 1's context under `cfg`, not recording.
    pub(crate) fn context<'a>(&'a self, cfg: &'a RunConfig) -> SeedContext<'a> {
        SeedContext::new(
            cfg,
            &self.factory,
            &self.device,
            1,
            self.offline.clone(),
            &self.progress,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::KeysDoorsFixture;
    use crate::training::config::{EvalFold, RunConfig};
    use dreamgym_policy::rollout::{Split, fold_of};

    #[test]
    fn a_validation_run_trains_beside_the_validation_fold_and_never_plays_the_held_out_one() {
        let cfg = RunConfig {
            difficulty: Some(1),
            offline_episodes: 40,
            eval_episodes: 30,
            eval_fold: EvalFold::Validation,
            ..RunConfig::default()
        };
        let fixture = KeysDoorsFixture::new(&cfg);
        let ctx = fixture.context(&cfg);
        let first_folds = |ts: &[dreamgym_buffer::Trajectory]| -> Vec<u32> {
            ts.iter().map(|t| fold_of(&t.steps[0].state)).collect()
        };
        let offline = first_folds(&ctx.offline);
        assert!(!offline.is_empty());
        assert!(
            offline.iter().all(|&f| f >= 2),
            "seed data on folds 2-4 only: {offline:?}"
        );
        let trainer = ctx.start(true).unwrap();
        let (_, episodes) = ctx.evaluate_episodes(&trainer).unwrap();
        let evaluated = first_folds(&episodes);
        assert_eq!(evaluated.len(), 30);
        assert!(
            evaluated.iter().all(|&f| f == 1),
            "evaluated on the validation fold only: {evaluated:?}"
        );
        // the splits partition the folds: held-out, validation and the rest of training
        for fold in 0..dreamgym_policy::rollout::FOLDS {
            let holding = [
                Split::HeldOut,
                Split::Validation,
                Split::TrainBesideValidation,
            ]
            .iter()
            .filter(|s| s.holds(fold))
            .count();
            assert_eq!(holding, 1, "fold {fold}");
            assert_eq!(
                Split::Train.holds(fold),
                Split::Validation.holds(fold) || Split::TrainBesideValidation.holds(fold)
            );
        }
        // the default evaluates on the held-out fold, trains on the other four
        let held = RunConfig::default();
        assert_eq!(
            (held.train_split(), held.eval_split()),
            (Split::Train, Split::HeldOut)
        );
    }
}
