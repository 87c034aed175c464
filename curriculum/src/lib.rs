//! `dreamgym-curriculum`: the curriculum task generator.
//!
//! A [`Curriculum`] keeps a pool of concrete tasks (a task spec and an instance seed) with the
//! outcomes of their recent rollout groups. A task's value is the variance of those outcomes —
//! `p(1-p)` for binary success — so tasks the policy sometimes solves and sometimes fails (its
//! frontier) are valued most. Batches are drawn by value, with at most `lambda` of each batch from
//! generated tasks. [`Curriculum::expand`] asks a [`VariantGenerator`] for harder variants of the
//! highest-valued tasks; a variant enters the pool only after the generator's feasibility check
//! (for scenarios: the planning expert solves it). The difficulty reached is recorded per round.

pub mod knobs;
pub mod llm;
pub mod scenario;

use dreamgym_sim::{Env, PosedTask, TaskSpec};
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

pub use knobs::KnobVariants;
pub use llm::LlmVariants;
pub use scenario::ScenarioVariants;

/// A concrete task: which task family and which instance of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskVariant {
    /// Template (None: any) and difficulty.
    pub template: Option<String>,
    /// Difficulty level.
    pub difficulty: u32,
    /// Instance seed.
    pub seed: u64,
    /// A task an LLM wrote (its instruction and the real task it starts from); the difficulty
    /// then counts generations above the seed task's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posed: Option<PosedTask>,
}

impl TaskVariant {
    /// The env-side spec of this task.
    pub fn spec(&self) -> TaskSpec {
        TaskSpec {
            template: self.template.clone(),
            difficulty: Some(self.difficulty),
            posed: self.posed.clone(),
        }
    }
}

/// Where a pool task came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    /// A seed task (from the offline data or the user).
    Seed,
    /// Generated as a harder variant of pool task `parent`.
    Generated {
        /// The parent task's id.
        parent: usize,
    },
}

/// A task in the pool with its recent outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolTask {
    /// Index in the pool.
    pub id: usize,
    /// The task.
    pub variant: TaskVariant,
    /// Seed or generated.
    pub origin: Origin,
    /// Recent outcomes (episode successes or returns), newest last.
    pub outcomes: VecDeque<f32>,
}

impl PoolTask {
    /// Variance of the recent outcomes (`p(1-p)` for binary outcomes); `None` before any.
    pub fn value(&self) -> Option<f32> {
        outcome_variance(self.outcomes.iter().copied())
    }

    /// Mean of the recent outcomes.
    pub fn mean(&self) -> Option<f32> {
        let n = self.outcomes.len();
        (n > 0).then(|| self.outcomes.iter().sum::<f32>() / n as f32)
    }
}

/// Population variance of outcomes (`p(1-p)` when they are 0/1); `None` for none.
pub fn outcome_variance(outcomes: impl IntoIterator<Item = f32>) -> Option<f32> {
    let v: Vec<f32> = outcomes.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f32;
    let mean = v.iter().sum::<f32>() / n;
    Some(v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n)
}

/// Settings of the curriculum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurriculumConfig {
    /// Largest share of a batch drawn from generated tasks (the paper's lambda).
    pub lambda: f32,
    /// Outcomes remembered per task.
    pub window: usize,
    /// Harder variants proposed per expansion round.
    pub variants_per_round: usize,
    /// Only tasks valued at least this much get variants.
    pub min_value: f32,
    /// Weight of a task never tried (the largest binary variance, so new tasks get tried).
    pub unseen_value: f32,
    /// Weight floor so solved or hopeless tasks are still drawn now and then.
    pub floor: f32,
}

impl Default for CurriculumConfig {
    fn default() -> Self {
        Self {
            lambda: 0.3,
            window: 16,
            variants_per_round: 4,
            min_value: 0.05,
            unseen_value: 0.25,
            floor: 0.01,
        }
    }
}

impl CurriculumConfig {
    /// Checks every setting's range (NaN and infinities included): the first one outside is the
    /// error, named as in the config (`curriculum.lambda`).
    pub fn validate(&self) -> Result<(), String> {
        let share = |name: &str, x: f32| {
            if x.is_finite() && (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!(
                    "`curriculum.{name}` must be a share in [0, 1], got {x}"
                ))
            }
        };
        share("lambda", self.lambda)?;
        share("min_value", self.min_value)?;
        share("unseen_value", self.unseen_value)?;
        share("floor", self.floor)?;
        if self.window == 0 {
            return Err("`curriculum.window` must be at least 1".into());
        }
        Ok(())
    }
}

/// Difficulty reached at one round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DifficultyPoint {
    /// Round (training iteration).
    pub round: usize,
    /// Mean difficulty of the batch trained on.
    pub batch_difficulty: f32,
    /// Highest difficulty in the pool.
    pub max_difficulty: u32,
    /// Pool size.
    pub pool: usize,
    /// Generated tasks in the pool.
    pub generated: usize,
}

/// Makes harder variants of tasks and checks them.
pub trait VariantGenerator: Send {
    /// A harder variant of `parent`, if there is one.
    fn harder(&mut self, parent: &TaskVariant, rng: &mut dyn rand::Rng) -> Option<TaskVariant>;
    /// Whether the variant is solvable (checked before it enters the pool).
    fn feasible(&mut self, variant: &TaskVariant) -> bool;
    /// The difficulty levels above `difficulty` this generator can reach for `template` (so a
    /// caller can fetch real initial states of them ahead of time); none by default.
    fn levels_above(&self, template: Option<&str>, difficulty: u32) -> Vec<u32> {
        let _ = (template, difficulty);
        vec![]
    }
}

/// Whether `env`'s expert solves `variant` within `max_steps` steps (false where the env cannot
/// start the variant, has no expert, or the expert fails or errs).
pub fn expert_solves(env: &mut dyn Env, variant: &TaskVariant, max_steps: usize) -> bool {
    if env.reset(&variant.spec(), variant.seed).is_err() {
        return false;
    }
    for _ in 0..max_steps {
        let Ok(Some(action)) = env.expert_action() else {
            return false;
        };
        match env.step(&action) {
            Ok(r) if r.success => return true,
            Ok(r) if r.done || r.truncated => return false,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// The curriculum: a task pool, value-weighted batches with the lambda cap, and expansion.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Curriculum {
    cfg: CurriculumConfig,
    tasks: Vec<PoolTask>,
    history: Vec<DifficultyPoint>,
    rejected: usize,
}

impl Curriculum {
    /// A pool of seed tasks.
    pub fn new(cfg: CurriculumConfig, seeds: impl IntoIterator<Item = TaskVariant>) -> Self {
        let tasks = seeds
            .into_iter()
            .enumerate()
            .map(|(id, variant)| PoolTask {
                id,
                variant,
                origin: Origin::Seed,
                outcomes: VecDeque::new(),
            })
            .collect();
        Self {
            cfg,
            tasks,
            history: vec![],
            rejected: 0,
        }
    }

    /// The pool.
    pub fn tasks(&self) -> &[PoolTask] {
        &self.tasks
    }

    /// The difficulty history.
    pub fn history(&self) -> &[DifficultyPoint] {
        &self.history
    }

    /// Variants the feasibility check turned away so far.
    pub fn rejected(&self) -> usize {
        self.rejected
    }

    fn weight(&self, t: &PoolTask) -> f32 {
        t.value()
            .unwrap_or(self.cfg.unseen_value)
            .max(self.cfg.floor)
    }

    /// Draws a batch of `n` task ids (with replacement when the pool is smaller), weighted by
    /// value; at most `floor(lambda * n)` of them generated.
    pub fn sample_batch(&self, n: usize, rng: &mut impl Rng) -> Vec<usize> {
        let cap = (self.cfg.lambda.clamp(0.0, 1.0) * n as f32).floor() as usize;
        let seeds: Vec<&PoolTask> = self
            .tasks
            .iter()
            .filter(|t| t.origin == Origin::Seed)
            .collect();
        let generated: Vec<&PoolTask> = self
            .tasks
            .iter()
            .filter(|t| t.origin != Origin::Seed)
            .collect();
        let mut out = Vec::with_capacity(n);
        let mut generated_taken = 0;
        for _ in 0..n {
            let allow_generated = generated_taken < cap && !generated.is_empty();
            let candidates: Vec<&PoolTask> = if allow_generated || seeds.is_empty() {
                self.tasks
                    .iter()
                    .filter(|t| allow_generated || t.origin == Origin::Seed)
                    .collect()
            } else {
                seeds.clone()
            };
            if candidates.is_empty() {
                break;
            }
            let total: f32 = candidates.iter().map(|t| self.weight(t)).sum();
            let mut u = rng.random::<f32>() * total;
            let mut pick = candidates[candidates.len() - 1];
            for t in &candidates {
                u -= self.weight(t);
                if u <= 0.0 {
                    pick = t;
                    break;
                }
            }
            if pick.origin != Origin::Seed {
                generated_taken += 1;
            }
            out.push(pick.id);
        }
        out
    }

    /// Records the outcomes of a rollout group on task `id` (keeps the last `window`).
    pub fn record(&mut self, id: usize, outcomes: &[f32]) {
        let window = self.cfg.window.max(1);
        if let Some(t) = self.tasks.get_mut(id) {
            for &o in outcomes {
                t.outcomes.push_back(o);
                while t.outcomes.len() > window {
                    t.outcomes.pop_front();
                }
            }
        }
    }

    /// Proposes harder variants of the highest-valued tasks (value >= `min_value`) and adds the
    /// feasible ones that are not in the pool already. Returns how many were added.
    pub fn expand(
        &mut self,
        generator: &mut dyn VariantGenerator,
        rng: &mut dyn rand::Rng,
    ) -> usize {
        let mut ranked: Vec<(usize, f32)> = self
            .tasks
            .iter()
            .filter_map(|t| t.value().map(|v| (t.id, v)))
            .collect();
        ranked.retain(|(_, v)| *v >= self.cfg.min_value);
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut added = 0;
        for (parent, _) in ranked.into_iter().take(self.cfg.variants_per_round) {
            let Some(v) = generator.harder(&self.tasks[parent].variant, rng) else {
                continue;
            };
            if self.tasks.iter().any(|t| t.variant == v) {
                continue;
            }
            if !generator.feasible(&v) {
                self.rejected += 1;
                continue;
            }
            let id = self.tasks.len();
            self.tasks.push(PoolTask {
                id,
                variant: v,
                origin: Origin::Generated { parent },
                outcomes: VecDeque::new(),
            });
            added += 1;
        }
        added
    }

    /// Records the difficulty of a round's batch (for the report).
    pub fn record_round(&mut self, round: usize, batch: &[usize]) {
        let diffs: Vec<u32> = batch
            .iter()
            .filter_map(|&i| self.tasks.get(i))
            .map(|t| t.variant.difficulty)
            .collect();
        let batch_difficulty = if diffs.is_empty() {
            0.0
        } else {
            diffs.iter().sum::<u32>() as f32 / diffs.len() as f32
        };
        self.history.push(DifficultyPoint {
            round,
            batch_difficulty,
            max_difficulty: self
                .tasks
                .iter()
                .map(|t| t.variant.difficulty)
                .max()
                .unwrap_or(0),
            pool: self.tasks.len(),
            generated: self
                .tasks
                .iter()
                .filter(|t| t.origin != Origin::Seed)
                .count(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn task(d: u32, seed: u64) -> TaskVariant {
        TaskVariant {
            template: Some("t".into()),
            difficulty: d,
            seed,
            posed: None,
        }
    }

    /// Harder = next difficulty, up to 3; difficulty-3 tasks with odd seeds are infeasible.
    struct Ladder;
    impl VariantGenerator for Ladder {
        fn harder(
            &mut self,
            parent: &TaskVariant,
            _rng: &mut dyn rand::Rng,
        ) -> Option<TaskVariant> {
            (parent.difficulty < 3).then(|| task(parent.difficulty + 1, parent.seed))
        }
        fn feasible(&mut self, v: &TaskVariant) -> bool {
            !(v.difficulty == 3 && v.seed % 2 == 1)
        }
    }

    #[test]
    fn value_is_the_outcome_variance() {
        assert_eq!(outcome_variance([1.0, 0.0, 1.0, 0.0]), Some(0.25));
        assert_eq!(outcome_variance([1.0, 1.0]), Some(0.0));
        assert!(
            (outcome_variance([1.0, 0.0, 0.0, 0.0]).unwrap() - 0.1875).abs() < 1e-6,
            "p(1-p) with p = 1/4"
        );
        assert_eq!(outcome_variance([]), None);
    }

    #[test]
    fn batches_favour_the_frontier_and_respect_lambda() {
        let mut c = Curriculum::new(
            CurriculumConfig {
                floor: 0.01,
                ..Default::default()
            },
            [task(1, 0), task(1, 1)],
        );
        c.record(0, &[1.0, 1.0, 1.0, 1.0]); // solved: value 0
        c.record(1, &[1.0, 0.0, 1.0, 0.0]); // frontier: value 0.25
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let batch = c.sample_batch(1000, &mut rng);
        let frontier = batch.iter().filter(|&&i| i == 1).count();
        assert!(frontier > 900, "frontier task drawn {frontier}/1000");

        assert_eq!(
            c.expand(&mut Ladder, &mut rng),
            1,
            "only the frontier task has value >= min_value"
        );
        assert_eq!(c.tasks()[2].origin, Origin::Generated { parent: 1 });
        assert_eq!(c.tasks()[2].variant.difficulty, 2);
        let batch = c.sample_batch(10, &mut rng);
        let generated = batch.iter().filter(|&&i| i == 2).count();
        assert!(
            generated <= 3,
            "lambda 0.3 caps generated tasks at 3 of 10, got {generated}"
        );
        assert!(
            generated >= 1,
            "an unseen generated task is valued 0.25 and drawn"
        );
        c.record_round(1, &batch);
        assert_eq!(c.history()[0].max_difficulty, 2);
        assert_eq!(c.history()[0].generated, 1);
    }

    #[test]
    fn infeasible_and_duplicate_variants_stay_out() {
        let mut c = Curriculum::new(CurriculumConfig::default(), [task(2, 1), task(2, 2)]);
        c.record(0, &[1.0, 0.0]);
        c.record(1, &[0.0, 1.0]);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert_eq!(
            c.expand(&mut Ladder, &mut rng),
            1,
            "seed 1 at difficulty 3 is infeasible"
        );
        assert_eq!(c.rejected(), 1);
        assert_eq!(c.tasks().len(), 3);
        assert_eq!(
            c.expand(&mut Ladder, &mut rng),
            0,
            "the same variant is not added twice"
        );
        let zero = Curriculum::new(
            CurriculumConfig {
                lambda: 0.0,
                ..Default::default()
            },
            [task(1, 0)],
        );
        let mut z = zero.clone();
        z.record(0, &[1.0, 0.0]);
        z.expand(&mut Ladder, &mut rng);
        assert!(
            z.sample_batch(50, &mut rng).iter().all(|&i| i == 0),
            "lambda 0: seeds only"
        );
    }

    #[test]
    fn settings_out_of_range_are_refused() {
        assert!(CurriculumConfig::default().validate().is_ok());
        for (field, cfg) in [
            (
                "lambda",
                CurriculumConfig {
                    lambda: f32::NAN,
                    ..Default::default()
                },
            ),
            (
                "lambda",
                CurriculumConfig {
                    lambda: 1.5,
                    ..Default::default()
                },
            ),
            (
                "floor",
                CurriculumConfig {
                    floor: -0.1,
                    ..Default::default()
                },
            ),
            (
                "window",
                CurriculumConfig {
                    window: 0,
                    ..Default::default()
                },
            ),
        ] {
            let e = cfg.validate().unwrap_err();
            assert!(e.contains(&format!("curriculum.{field}")), "{e}");
        }
    }
}
