//! Validation against unlearning (issue 31, part 4; ME-TRPO's policy validation): while a
//! learner trains in the experience model, it is evaluated every `validate_every` iterations —
//! and at the start (the behaviour-cloning warm start) and the end — in models it did not train
//! in: native models fit on bootstrap resamples of the offline episodes (the ensemble's
//! members). No real step is spent. Training keeps the best policy so far, "best" the ME-TRPO
//! way: a higher mean success over the members *and* at least as high in most of them; where
//! the best policy so far beats the last one so, the run rolls back to it (a model that is wrong and
//! pessimistic can unlearn a good start; its bootstrap siblings are wrong elsewhere).
//!
//! Every check evaluates the same episodes (one seed for all checks: common random numbers),
//! policy actions sampled, as the held-out evaluation does.

use anyhow::Result;
use dreamgym_policy::{TaskSampler, Trainer};
use dreamgym_sim::Env;
use serde::Serialize;

/// One check: the policy after `iteration` iterations, its success in each member.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationCheck {
    /// Iterations trained when checked (0: the warm start).
    pub iteration: usize,
    /// Success in each member's model, in member order.
    pub scores: Vec<f32>,
    /// Their mean.
    pub mean: f32,
    /// Whether this policy became the best so far.
    pub best: bool,
}

/// What validation did over a training run (in `summary.json`, per seed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationReport {
    /// Every check, in order.
    pub checks: Vec<ValidationCheck>,
    /// The iteration whose policy the run kept.
    pub kept_iteration: usize,
    /// Whether that is not the last policy (training rolled back).
    pub rolled_back: bool,
}

/// Validation of one training run (see the module docs).
pub struct Validation {
    envs: Vec<Box<dyn Env>>,
    sampler: TaskSampler,
    episodes: usize,
    seed: u64,
    checks: Vec<ValidationCheck>,
    best: Option<(usize, Vec<f32>, Trainer)>,
}

/// Whether `new` scores beat `best`'s: a higher mean and at least as high in most members.
pub fn beats(new: &[f32], best: &[f32]) -> bool {
    let mean = |x: &[f32]| x.iter().sum::<f32>() / x.len().max(1) as f32;
    let at_least = new.iter().zip(best).filter(|(n, b)| n >= b).count();
    mean(new) > mean(best) && 2 * at_least > new.len()
}

impl Validation {
    /// Validation in `envs` (one per member), `episodes` episodes of `sampler`'s tasks each,
    /// seeded by `seed`.
    pub fn new(envs: Vec<Box<dyn Env>>, sampler: TaskSampler, episodes: usize, seed: u64) -> Self {
        Self {
            envs,
            sampler,
            episodes: episodes.max(1),
            seed,
            checks: vec![],
            best: None,
        }
    }

    /// Evaluate `trainer` after `iteration` iterations; keep a copy where it is the best so
    /// far.
    pub fn check(&mut self, iteration: usize, trainer: &Trainer) -> Result<()> {
        let scores = self
            .envs
            .iter_mut()
            .map(|env| {
                Ok(trainer
                    .evaluate(env.as_mut(), &self.sampler, self.episodes, false, self.seed)?
                    .success)
            })
            .collect::<Result<Vec<f32>>>()?;
        let best = match &self.best {
            None => true,
            Some((_, b, _)) => beats(&scores, b),
        };
        if best {
            self.best = Some((iteration, scores.clone(), trainer.clone()));
        }
        let mean = scores.iter().sum::<f32>() / scores.len().max(1) as f32;
        self.checks.push(ValidationCheck {
            iteration,
            scores,
            mean,
            best,
        });
        Ok(())
    }

    /// The policy to keep — `last` (trained `iterations` iterations, checked last) unless an
    /// earlier best policy beats it — and the report.
    pub fn finish(self, last: Trainer, iterations: usize) -> (Trainer, ValidationReport) {
        let last_scores = self
            .checks
            .iter()
            .rev()
            .find(|c| c.iteration == iterations)
            .map(|c| c.scores.clone());
        let (kept_iteration, trainer) = match (self.best, last_scores) {
            (Some((i, best, t)), Some(last_scores))
                if i != iterations && beats(&best, &last_scores) =>
            {
                (i, t)
            }
            _ => (iterations, last),
        };
        (
            trainer,
            ValidationReport {
                checks: self.checks,
                kept_iteration,
                rolled_back: kept_iteration != iterations,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Validation, beats};
    use crate::training::config::RunConfig;
    use crate::training::context::KeysDoorsFixture;
    use dreamgym_policy::TaskSampler;

    /// A good policy (behaviour cloned on expert-rich data) checked first and a bad one (fresh)
    /// last: the run rolls back to the good one, which evaluates as it did.
    #[test]
    fn training_rolls_back_to_the_best_policy_checked() {
        let cfg = RunConfig {
            offline_episodes: 40,
            bc_warm_start: false,
            ..RunConfig::default()
        };
        let fixture = KeysDoorsFixture::new(&cfg);
        let factory = fixture.factory();
        let ctx = fixture.context(&cfg);
        let good = ctx.start(true).unwrap();
        let bad = ctx.start(false).unwrap();
        let envs = (0..3).map(|_| factory.open()).collect();
        let sampler = TaskSampler::any(dreamgym_sim::TaskSpec::default());
        let mut v = Validation::new(envs, sampler.clone(), 30, 9);
        v.check(0, &good).unwrap();
        v.check(5, &bad).unwrap();
        let (kept, report) = v.finish(bad, 5);
        let (g, b) = (report.checks[0].mean, report.checks[1].mean);
        assert!(g > b, "good {g} vs bad {b}");
        assert!(
            report.rolled_back && report.kept_iteration == 0,
            "{report:?}"
        );
        assert!(report.checks[0].best && !report.checks[1].best);
        let again = kept
            .evaluate(factory.open().as_mut(), &sampler, 30, false, 9)
            .unwrap()
            .success;
        assert!(
            (again - report.checks[0].scores[0]).abs() < 1e-6,
            "the good policy kept"
        );
        // the last policy as good as the best: kept, no roll-back
        let mut v = Validation::new(vec![factory.open()], sampler, 30, 9);
        v.check(0, &kept).unwrap();
        v.check(3, &kept).unwrap();
        let (_, report) = v.finish(kept, 3);
        assert!(
            !report.rolled_back && report.kept_iteration == 3,
            "{report:?}"
        );
    }

    #[test]
    fn a_policy_is_better_only_with_a_higher_mean_and_most_members_agreeing() {
        assert!(beats(&[0.5, 0.5, 0.5], &[0.4, 0.4, 0.4]));
        // higher mean from one member alone: not better
        assert!(!beats(&[0.9, 0.3, 0.3], &[0.4, 0.4, 0.4]));
        // most members at least as high, but the same mean: not better
        assert!(!beats(&[0.4, 0.4, 0.4], &[0.4, 0.4, 0.4]));
        // two of three higher and a higher mean: better
        assert!(beats(&[0.5, 0.5, 0.3], &[0.4, 0.4, 0.4]));
        // worse: not better
        assert!(!beats(&[0.3, 0.3, 0.3], &[0.4, 0.4, 0.4]));
    }
}
