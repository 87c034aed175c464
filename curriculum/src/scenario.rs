//! Harder variants of scenario tasks: the same template at the next difficulty level the scenario
//! defines (more rooms, more distractors, locked doors, ...), a fresh instance seed, and a
//! feasibility check that the planning expert solves it.

use crate::{TaskVariant, VariantGenerator, expert_solves};
use dreamgym_sim::ScenarioEnv;
use rand::RngExt;
use std::collections::BTreeSet;

/// Variant generator over a scenario's task templates and difficulty levels.
pub struct ScenarioVariants {
    env: ScenarioEnv,
    levels: Vec<(String, BTreeSet<u32>)>,
    /// Step budget of the expert in the feasibility check.
    pub expert_steps: usize,
}

impl ScenarioVariants {
    /// A generator over `env`'s scenario.
    pub fn new(env: ScenarioEnv) -> Self {
        let levels = env
            .world()
            .tasks
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    t.levels.iter().map(|l| l.difficulty).collect(),
                )
            })
            .collect();
        Self {
            env,
            levels,
            expert_steps: 200,
        }
    }

    /// The next difficulty above `d` for `template` (any template when `None`).
    pub fn next_level(&self, template: Option<&str>, d: u32) -> Option<u32> {
        self.levels
            .iter()
            .filter(|(id, _)| template.is_none_or(|t| t == id))
            .filter_map(|(_, ls)| ls.range(d + 1..).next().copied())
            .min()
    }
}

impl VariantGenerator for ScenarioVariants {
    fn harder(&mut self, parent: &TaskVariant, rng: &mut dyn rand::Rng) -> Option<TaskVariant> {
        let difficulty = self.next_level(parent.template.as_deref(), parent.difficulty)?;
        Some(TaskVariant {
            template: parent.template.clone(),
            difficulty,
            seed: rng.random::<u64>() >> 1,
            posed: None,
        })
    }

    fn feasible(&mut self, variant: &TaskVariant) -> bool {
        expert_solves(&mut self.env, variant, self.expert_steps)
    }

    fn levels_above(&self, template: Option<&str>, difficulty: u32) -> Vec<u32> {
        let mut out: BTreeSet<u32> = BTreeSet::new();
        for (id, ls) in &self.levels {
            if template.is_none_or(|t| t == id) {
                out.extend(ls.range(difficulty + 1..));
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::path::Path;

    #[test]
    fn variants_climb_the_scenario_levels_and_the_expert_vouches_for_them() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/keys_doors.ron");
        let mut g = ScenarioVariants::new(ScenarioEnv::load(&path).unwrap());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let parent = TaskVariant {
            template: Some("pickup".into()),
            difficulty: 1,
            seed: 5,
            posed: None,
        };
        let v = g.harder(&parent, &mut rng).unwrap();
        assert_eq!(v.difficulty, 2);
        assert!(
            g.feasible(&v),
            "the expert solves keys_doors pickup level 2"
        );
        let top = TaskVariant {
            template: Some("pickup".into()),
            difficulty: 3,
            seed: 5,
            posed: None,
        };
        assert!(g.harder(&top, &mut rng).is_none(), "no level above 3");
        g.expert_steps = 0;
        assert!(!g.feasible(&v), "an expert with no steps solves nothing");
        let unknown = TaskVariant {
            template: Some("no_such_template".into()),
            difficulty: 1,
            seed: 1,
            posed: None,
        };
        assert!(!g.feasible(&unknown));
    }
}
