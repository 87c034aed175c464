//! The curriculum's task families (template, difficulty) and what it needs to start them in an
//! experience model: the families of the offline data, the generator of harder families for an
//! env, and real initial states of the harder levels (resets only, no interaction). Shared by
//! `dreamgym run`/`train` and `dreamgym serve`'s synthetic env.

use crate::support::envs::EnvFactory;
use anyhow::{Context, Result};
use dreamgym_buffer::{Observation, Task, Trajectory};
use dreamgym_curriculum::{
    KnobVariants, LlmVariants, ScenarioVariants, TaskVariant, VariantGenerator,
};
use dreamgym_policy::TaskSampler;
use dreamgym_policy::rollout::Split;
use dreamgym_sim::TaskSpec;
use dreamgym_sim::model::env::initial_states;
use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// The curriculum's seed tasks: every (template, difficulty) family of the offline data, in
/// data order.
pub(crate) fn offline_families(offline: &[Trajectory]) -> Vec<TaskVariant> {
    let mut families: Vec<TaskVariant> = vec![];
    for t in offline {
        let v = TaskVariant {
            template: t.task.params.get("template").cloned(),
            difficulty: t.task.difficulty,
            seed: 0,
            posed: None,
        };
        if !families.contains(&v) {
            families.push(v);
        }
    }
    families
}

/// The pipeline's curriculum works on task families (template, difficulty): the experience model
/// starts a family's tasks from any real initial state of it. A harder family enters the pool when
/// the expert solves three of its instances. Scenarios climb their own difficulty levels; bridged
/// envs their adapter's difficulty knob (more distractors, locations, ...).
pub(crate) struct Families(Box<dyn VariantGenerator>);

impl Families {
    /// The generator for `factory`'s env.
    pub(crate) fn for_env(factory: &EnvFactory) -> Self {
        match factory.scenario() {
            Some(s) => Self(Box::new(ScenarioVariants::new(s))),
            None => Self(Box::new(KnobVariants::new(
                factory.open(),
                BRIDGE_MAX_DIFFICULTY,
            ))),
        }
    }

    /// The LLM experience model's task generator, writing variations of the tasks of `real`.
    pub(crate) fn written_by_llm(real: &[Trajectory]) -> Result<Self> {
        let cfg = LlmConfig::from_env().context("experience_model: Llm (task generation)")?;
        let writer =
            Arc::new(LlmModel::new(cfg).context("experience_model: Llm (task generation)")?);
        Ok(Self(Box::new(LlmVariants::new(
            writer,
            initial_states(real),
        ))))
    }
}

/// Highest difficulty the curriculum asks a bridged env for (what the shipped adapters serve;
/// level 1 is the env as named).
pub(crate) const BRIDGE_MAX_DIFFICULTY: u32 = 4;

impl VariantGenerator for Families {
    fn harder(&mut self, parent: &TaskVariant, rng: &mut dyn rand::Rng) -> Option<TaskVariant> {
        self.0
            .harder(parent, rng)
            .map(|v| TaskVariant { seed: 0, ..v })
    }

    fn feasible(&mut self, v: &TaskVariant) -> bool {
        (1..=3).all(|seed| self.0.feasible(&TaskVariant { seed, ..v.clone() }))
    }

    fn levels_above(&self, template: Option<&str>, difficulty: u32) -> Vec<u32> {
        self.0.levels_above(template, difficulty)
    }
}

/// Real initial states (resets only, no interaction) of every harder level above the seed
/// families, so the experience model can start the curriculum's generated tasks. A level the
/// env will not start (a bridged env without a difficulty knob) is skipped.
pub(crate) fn harder_starts(
    factory: &EnvFactory,
    generator: &Families,
    families: &[TaskVariant],
    split: Split,
    seed: u64,
) -> Result<Vec<(Task, Observation)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57a7);
    let mut levels: Vec<(Option<String>, u32)> = vec![];
    for f in families {
        for d in generator.levels_above(f.template.as_deref(), f.difficulty) {
            let seeded = families
                .iter()
                .any(|g| g.template == f.template && g.difficulty == d);
            let key = (f.template.clone(), d);
            if !seeded && !levels.contains(&key) {
                levels.push(key);
            }
        }
    }
    let mut env = factory.open();
    let mut out = vec![];
    for (template, difficulty) in levels {
        let sampler = TaskSampler::of(
            TaskSpec {
                template,
                difficulty: Some(difficulty),
                posed: None,
            },
            split,
        );
        for _ in 0..32 {
            let obs = match sampler.reset(env.as_mut(), &mut rng) {
                Ok((obs, _)) => obs,
                Err(e) => {
                    tracing::info!("no initial states at {}: {e}", sampler.spec);
                    break;
                }
            };
            if let Some(task) = env.task() {
                out.push((task.clone(), obs));
            }
        }
    }
    Ok(out)
}
