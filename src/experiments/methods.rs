//! The methods of a comparison as data — how each one obtains a policy — and the one procedure
//! that trains and evaluates any of them on a seed ([`SeedContext::play`]), shared by
//! `dreamgym run` and `dreamgym efficiency`.
//!
//! Real interactions are counted the same way for every method: `SeedResult::offline_steps` is
//! the offline seed data a method used (the behaviour-cloning warm start, the experience model's
//! fit), `real_steps` its online real steps.

use crate::training::config::ExperienceModelKind;
use crate::training::context::{SeedContext, random_success};
use crate::training::real::{Next, SimToRealPlan};
use crate::training::synthetic::Switches;
use crate::training::validation::ValidationReport;
use anyhow::{Context, Result};
use dreamgym_buffer::Trajectory;
use dreamgym_curriculum::DifficultyPoint;
use dreamgym_policy::TaskSampler;
use dreamgym_policy::Trainer;
use dreamgym_sim::model::ExperienceModel;
use dreamgym_sim::model::env::FailureCounts;
use dreamgym_sim::model::fidelity;
use serde::Serialize;

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
    /// For methods trained in the experience model: (synthetic steps so far, training success
    /// inside the model) along the way.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub synthetic_curve: Vec<(u64, f32)>,
    /// For methods trained in the experience model: training success inside the model over the
    /// last 5 iterations (against `success` in the real env: the sim-to-real gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_success: Option<f32>,
    /// For methods trained in the experience model: steps it could not use (rejected replies,
    /// dead-end states), which ended their synthetic episodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_failures: Option<FailureCounts>,
    /// For methods trained in the experience model: `model_success` minus held-out real
    /// `success`, the model→real gap (far above 0: the policy found a model error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_real_gap: Option<f32>,
    /// For methods trained in a native experience model: that model scored on the trained
    /// policy's own held-out evaluation episodes (already played: no extra real steps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_policy: Option<OnPolicyFidelity>,
    /// For methods trained in the experience model with `validate_every`: the validation
    /// checks and the policy kept (a roll-back, where it happened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationReport>,
}

/// The experience model's fidelity on the states the trained policy reaches in the real env
/// (its held-out evaluation episodes), where fidelity on behaviour data cannot see what the
/// policy exploits. Reported, never tuned on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OnPolicyFidelity {
    /// Transitions scored.
    pub transitions: usize,
    /// Share predicted with exactly the real next state's lines.
    pub next_state_exact: f64,
    /// Share predicted with the real reward.
    pub reward_accuracy: f64,
    /// Share of the real non-success steps the model predicted as a success.
    pub false_success_rate: f64,
}

impl OnPolicyFidelity {
    /// `model` (fit on `train`, retrieving from it) scored on `episodes`.
    pub fn of(model: &dyn ExperienceModel, train: &[Trajectory], episodes: &[Trajectory]) -> Self {
        let all = fidelity::evaluate(model, train, episodes, 0.99).all;
        Self {
            transitions: all.transitions,
            next_state_exact: all.next_state_exact,
            reward_accuracy: all.reward_accuracy,
            false_success_rate: all.false_success_rate,
        }
    }
}

/// `rows` averaged into at most `points` points (each the mean of its stretch, at the stretch's
/// last x).
pub(crate) fn curve_of(rows: &[(u64, f32)], points: usize) -> Vec<(u64, f32)> {
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

/// The ablations of `dreamgym run`, by name; the last two toggle `RunConfig::sampled_world`
/// (`dreamgym_deterministic_model` where the run samples worlds, `dreamgym_sampled_world` where
/// it does not) and `RunConfig::ensemble` (`dreamgym_without_ensemble` / `dreamgym_ensemble`).
pub(crate) fn ablations(sampled_world: bool, ensemble: bool) -> [(&'static str, Switches); 5] {
    [
        (
            "dreamgym_without_retrieval",
            Switches {
                retrieval: false,
                ..Switches::ALL
            },
        ),
        (
            "dreamgym_without_reasoning",
            Switches {
                reasoning: false,
                ..Switches::ALL
            },
        ),
        (
            "dreamgym_without_curriculum",
            Switches {
                curriculum: false,
                ..Switches::ALL
            },
        ),
        (
            if sampled_world {
                "dreamgym_deterministic_model"
            } else {
                "dreamgym_sampled_world"
            },
            Switches {
                sampling_as_configured: false,
                ..Switches::ALL
            },
        ),
        (
            if ensemble {
                "dreamgym_without_ensemble"
            } else {
                "dreamgym_ensemble"
            },
            Switches {
                ensemble_as_configured: false,
                ..Switches::ALL
            },
        ),
    ]
}

/// One way of obtaining a policy.
pub(crate) enum Method<'a> {
    /// A uniformly random admissible policy (the floor every method must clear).
    Random,
    /// The behaviour-cloning warm start on the offline data, evaluated as it is.
    OfflineBc,
    /// A fresh learner (warm-started when `bc_warm_start`) trained in the real env.
    RealOnly {
        /// Policy iterations in the real env.
        iterations: usize,
    },
    /// A fresh learner trained in the experience model for `RunConfig::iterations`.
    DreamGym(Switches),
    /// A DreamGym policy continued in the real env (sim-to-real) at `s2r_lr_scale` x `lr`,
    /// annealed over its iterations; `from` is left as it was (its learner is cloned). The real
    /// iterations are spent in `s2r_rounds` rounds, each followed by `s2r_synthetic_iterations`
    /// in the experience model — refit on the offline data and the real episodes so far when
    /// `model_update`, as it was otherwise.
    SimToReal {
        /// What [`Method::DreamGym`] gave.
        from: &'a Played,
        /// Policy iterations in the real env.
        iterations: usize,
        /// Refit the experience model on the fresh real episodes.
        model_update: bool,
    },
}

impl Method<'_> {
    fn describe(&self) -> String {
        match self {
            Method::Random => " (uniformly random actions)".into(),
            Method::OfflineBc => " (behaviour cloning on the offline data)".into(),
            Method::RealOnly { iterations } => {
                format!(" ({iterations} iterations in the real env)")
            }
            Method::DreamGym(_) => " (training in the experience model)".into(),
            Method::SimToReal {
                iterations,
                model_update,
                ..
            } => format!(
                " (sim-to-real: {iterations} iterations in the real env{})",
                if *model_update {
                    ""
                } else {
                    ", the model not updated"
                }
            ),
        }
    }
}

/// The curriculum of a DreamGym training, for the report.
#[derive(Debug, Clone)]
pub(crate) struct CurriculumReport {
    /// Difficulty per iteration.
    pub history: Vec<DifficultyPoint>,
    /// Generated variants the feasibility check rejected.
    pub rejected: usize,
    /// The final task pool with recent mean outcome and value.
    pub pool: Vec<serde_json::Value>,
}

/// What playing a method gave.
pub(crate) struct Played {
    /// Its numbers on this seed.
    pub result: SeedResult,
    /// Sim-to-real: the real episodes it played (what refits the model).
    pub real_episodes: Vec<Trajectory>,
    /// The trained learner (methods that train one).
    pub trainer: Option<Trainer>,
    /// The curriculum (DreamGym).
    pub curriculum: Option<CurriculumReport>,
}

impl SeedContext<'_> {
    /// Trains `method` on this seed (its episodes recorded as `name` when the run records) and
    /// evaluates it on held-out instances.
    pub(crate) fn play(&self, name: &str, method: &Method<'_>) -> Result<Played> {
        self.progress
            .phase(&format!("seed {}: {name}{}", self.seed, method.describe()));
        self.record_as(name);
        let offline = self.offline_steps();
        let mut result = SeedResult {
            seed: self.seed,
            success: 0.0,
            real_steps: 0,
            offline_steps: 0,
            synthetic_steps: 0,
            curve: vec![],
            synthetic_curve: vec![],
            model_success: None,
            model_real_gap: None,
            on_policy: None,
            model_failures: None,
            validation: None,
        };
        let played = |result, trainer, curriculum| {
            Ok(Played {
                result,
                real_episodes: vec![],
                trainer,
                curriculum,
            })
        };
        match method {
            Method::Random => {
                let mut env = self.factory.open();
                result.success = random_success(
                    env.as_mut(),
                    &TaskSampler::of(self.spec.clone(), self.cfg.eval_split()),
                    self.cfg.eval_episodes,
                    self.policy.max_episode_steps,
                    self.seed ^ 0xe7a1,
                )?;
                played(result, None, None)
            }
            Method::OfflineBc => {
                let bc = self.start(true)?;
                result.success = self.evaluate(&bc)?;
                result.offline_steps = offline;
                played(result, Some(bc), None)
            }
            Method::RealOnly { iterations } => {
                let mut t = self.start(false)?;
                t.extend(*iterations);
                let (rows, _) = self.train_real(&mut t, *iterations, None, &mut |_, _| {
                    Ok(Next::Continue(()))
                })?;
                result.success = self.evaluate(&t)?;
                result.real_steps = t.counters().env_steps;
                result.offline_steps = if self.cfg.bc_warm_start { offline } else { 0 };
                result.curve = curve_of(&rows, self.cfg.curve_points);
                played(result, Some(t), None)
            }
            Method::DreamGym(sw) => {
                let run = self.train_synthetic(*sw)?;
                let (success, episodes) = self.evaluate_episodes(&run.trainer)?;
                result.success = success;
                result.model_real_gap = Some(run.model_success - success);
                // (an LLM model would be asked once per evaluation step: left out)
                if self.cfg.experience_model == ExperienceModelKind::Native {
                    let model = self.model(sw.reasoning)?;
                    result.on_policy = Some(OnPolicyFidelity::of(
                        model.as_ref(),
                        &self.offline,
                        &episodes,
                    ));
                }
                result.offline_steps = offline;
                result.synthetic_steps = run.synthetic_steps;
                result.curve = vec![(0, result.success)];
                result.synthetic_curve = curve_of(&run.rows, self.cfg.curve_points);
                result.model_success = Some(run.model_success);
                result.model_failures = Some(run.failures);
                result.validation = run.validation;
                let curriculum = CurriculumReport {
                    history: run.history,
                    rejected: run.rejected,
                    pool: run.pool,
                };
                played(result, Some(run.trainer), Some(curriculum))
            }
            Method::SimToReal {
                from,
                iterations,
                model_update,
            } => {
                let mut t = from
                    .trainer
                    .clone()
                    .context("sim-to-real continues a trained policy; this method kept none")?;
                let plan = SimToRealPlan::new(self.cfg, *iterations);
                let run = self.sim_to_real(&mut t, plan, 0, *model_update, true, &mut |_, _| {
                    Ok(Next::Continue(()))
                })?;
                let mut rows = vec![(0, from.result.success)];
                rows.extend(run.rows);
                let real = run.real_episodes;
                let synthetic = from.result.synthetic_steps + run.synthetic_steps;
                result.success = self.evaluate(&t)?;
                result.real_steps = t.counters().env_steps - synthetic;
                result.offline_steps = from.result.offline_steps;
                result.synthetic_steps = synthetic;
                result.curve = rows;
                Ok(Played {
                    result,
                    real_episodes: real,
                    trainer: Some(t),
                    curriculum: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
