//! The served synthetic env: one experience model fit on the user's offline real data, shared by
//! every session, and one curriculum that chooses the task of each reset that does not name one.
//!
//! Each session plays in its own [`ModelEnv`] (initial states from the offline data and from
//! real resets of the harder levels, retrieval of the real transitions of the instance played).
//! The curriculum is the pipeline's: the task families of the offline data, valued by the
//! variance of their recent outcomes; every session's finished episode is reported back to it, and
//! every `expand_every` finished episodes it proposes harder families (checked by the env's
//! expert before they enter the pool).

use crate::support::envs::EnvFactory;
use crate::training::families::{Families, harder_starts, offline_families};
use anyhow::Result;
use dreamgym_buffer::{Observation, Task, Trajectory};
use dreamgym_curriculum::{Curriculum, CurriculumConfig};
use dreamgym_policy::rollout::Split;
use dreamgym_sim::TaskSpec;
use dreamgym_sim::model::ExperienceModel;
use dreamgym_sim::model::env::{ModelEnv, ModelFailures};
use dreamgym_sim::model::retrieval::{Retrieval, RetrievalMode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};

/// The model, the data it starts episodes from, and the shared curriculum.
pub struct SyntheticWorld {
    model: Arc<dyn ExperienceModel>,
    offline: Vec<Trajectory>,
    extra_starts: Vec<(Task, Observation)>,
    max_steps: u32,
    retrieval: dreamgym_sim::model::env::SharedRetrieval,
    failures: Arc<ModelFailures>,
    curriculum: Mutex<SharedCurriculum>,
    may_block: bool,
}

struct SharedCurriculum {
    pool: Curriculum,
    rng: ChaCha8Rng,
    generator: Option<Families>,
    finished: usize,
    expand_every: usize,
}

/// A task the curriculum chose for a reset.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Its id in the curriculum's pool (outcomes are reported against it).
    pub pool_id: usize,
    /// The task family.
    pub spec: TaskSpec,
}

impl SyntheticWorld {
    /// The world of `model` fit on `offline` (real trajectories of `factory`'s env). With
    /// `curriculum`, harder families are generated (real resets of their levels are read now,
    /// without interaction, so the model can start them); `expand_every`: finished episodes
    /// between expansions.
    pub fn new(
        model: Arc<dyn ExperienceModel>,
        offline: Vec<Trajectory>,
        factory: &EnvFactory,
        curriculum: bool,
        expand_every: usize,
        seed: u64,
    ) -> Result<Self> {
        let families = offline_families(&offline);
        let generator = curriculum.then(|| Families::for_env(factory));
        let extra_starts = match &generator {
            Some(g) => harder_starts(factory, g, &families, Split::Train, seed)?,
            None => vec![],
        };
        // the real env's step limit, read off the offline data (as the pipeline does)
        let max_steps = offline
            .iter()
            .map(|t| t.steps.len())
            .max()
            .unwrap_or(1)
            .max(1) as u32;
        Ok(Self {
            retrieval: Arc::new(std::sync::RwLock::new(Retrieval::new(
                &offline,
                RetrievalMode::Instance,
            ))),
            model,
            offline,
            extra_starts,
            max_steps,
            failures: Arc::default(),
            curriculum: Mutex::new(SharedCurriculum {
                pool: Curriculum::new(CurriculumConfig::default(), families),
                rng: ChaCha8Rng::seed_from_u64(seed ^ 0xc0ff),
                generator,
                finished: 0,
                expand_every: expand_every.max(1),
            }),
            may_block: false,
        })
    }

    /// Say that the model's predictions may block for long (an LLM over the network), so the
    /// server runs them off its I/O threads.
    pub fn blocking(mut self, yes: bool) -> Self {
        self.may_block = yes;
        self
    }

    /// Whether the model's predictions may block for long.
    pub fn may_block(&self) -> bool {
        self.may_block
    }

    /// A fresh env for one session.
    pub fn open(&self) -> ModelEnv {
        let mut m = ModelEnv::with_retrieval(
            self.model.clone(),
            &self.offline,
            self.max_steps,
            self.retrieval.clone(),
        );
        m.count_failures_in(self.failures.clone());
        for (t, o) in &self.extra_starts {
            m.add_start(t.clone(), o.clone());
        }
        m
    }

    /// The model's name (for the env id and the records).
    pub fn model_name(&self) -> &str {
        self.model.name()
    }

    /// The curriculum's choice for a reset that names no task.
    pub fn choose(&self) -> Option<Chosen> {
        let mut c = self.lock();
        let c = &mut *c;
        let id = *c.pool.sample_batch(1, &mut c.rng).first()?;
        Some(Chosen {
            pool_id: id,
            spec: c.pool.tasks()[id].variant.spec(),
        })
    }

    /// Report a finished episode of a curriculum task; expands the pool every `expand_every`
    /// finished episodes.
    pub fn report(&self, pool_id: usize, success: bool) {
        let mut c = self.lock();
        let c = &mut *c;
        c.pool.record(pool_id, &[if success { 1.0 } else { 0.0 }]);
        c.finished += 1;
        if c.finished.is_multiple_of(c.expand_every)
            && let Some(g) = c.generator.as_mut()
        {
            let added = c.pool.expand(g, &mut c.rng);
            if added > 0 {
                tracing::info!(
                    "curriculum: {added} harder task families added after {} episodes",
                    c.finished
                );
            }
        }
    }

    /// How many finished curriculum episodes were reported, in all (the pool keeps only each
    /// family's recent outcomes).
    pub fn heard(&self) -> usize {
        self.lock().finished
    }

    /// The pool as JSON (for `GET /stats`): each task family with its recent mean success
    /// (`episodes`: the outcomes in its window, not all it had).
    pub fn pool_json(&self) -> serde_json::Value {
        let c = self.lock();
        c.pool
            .tasks()
            .iter()
            .map(|t| {
                serde_json::json!({
                    "task": t.variant,
                    "origin": t.origin,
                    "episodes": t.outcomes.len(),
                    "mean": t.mean(),
                })
            })
            .collect()
    }

    /// Steps the model could not use (rejected replies, dead ends), over all sessions.
    pub fn failures(&self) -> dreamgym_sim::model::env::FailureCounts {
        self.failures.counts()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SharedCurriculum> {
        // a panic while holding the lock cannot leave the pool half-updated in a way that
        // matters more than stopping the server would: keep serving
        self.curriculum
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
