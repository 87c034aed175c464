//! Harder variants through an environment's difficulty knob: the same task family one
//! [`TaskSpec::difficulty`](dreamgym_sim::TaskSpec) level up, on any env that reads that level —
//! bridged envs pass it to their adapter, which adds distractors, objects or locations
//! (docs/bridge.md, "Difficulty") — with a fresh instance seed, kept only when the env's own
//! expert (BabyAI's bot, TextWorldExpress's gold path) solves it.

use crate::{TaskVariant, VariantGenerator, expert_solves};
use dreamgym_sim::Env;
use rand::RngExt;

/// Variant generator over an env's difficulty levels `1..=max_difficulty`, counted like a
/// scenario's (level 1 — or 0 — is the env as named).
pub struct KnobVariants {
    env: Box<dyn Env>,
    /// Highest difficulty asked for (the shipped bridge adapters serve 0 to 3).
    pub max_difficulty: u32,
    /// Step budget of the expert in the feasibility check.
    pub expert_steps: usize,
}

impl KnobVariants {
    /// A generator climbing `env`'s levels up to `max_difficulty`.
    pub fn new(env: Box<dyn Env>, max_difficulty: u32) -> Self {
        Self {
            env,
            max_difficulty,
            expert_steps: 500,
        }
    }
}

impl VariantGenerator for KnobVariants {
    fn harder(&mut self, parent: &TaskVariant, rng: &mut dyn rand::Rng) -> Option<TaskVariant> {
        let next = parent.difficulty.max(1) + 1;
        (next <= self.max_difficulty).then(|| TaskVariant {
            template: parent.template.clone(),
            difficulty: next,
            seed: rng.random::<u64>() >> 1,
            posed: None,
        })
    }

    fn feasible(&mut self, variant: &TaskVariant) -> bool {
        variant.difficulty <= self.max_difficulty
            && expert_solves(self.env.as_mut(), variant, self.expert_steps)
    }

    fn levels_above(&self, _template: Option<&str>, difficulty: u32) -> Vec<u32> {
        (difficulty.max(1) + 1..=self.max_difficulty).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dreamgym_buffer::{Observation, Task};
    use dreamgym_sim::{EnvError, StepResult, TaskSpec};
    use rand::SeedableRng;

    /// A corridor whose length grows with the difficulty; the expert walks it, but only up to
    /// difficulty 2 (beyond it the env refuses the level, as an adapter without a knob does).
    struct Corridor {
        task: Option<Task>,
        left: u32,
    }

    fn obs() -> Observation {
        Observation {
            lines: vec!["[c] corridor: a corridor".into()],
            instruction: "reach the end".into(),
            admissible: vec!["walk".into()],
            feedback: String::new(),
        }
    }

    impl Env for Corridor {
        fn id(&self) -> &str {
            "corridor"
        }
        fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError> {
            let d = spec.difficulty.unwrap_or(0);
            if d > 2 {
                return Err(EnvError::Task {
                    env: "corridor".into(),
                    message: format!("no difficulty {d}"),
                });
            }
            self.left = 2 + 3 * d;
            self.task = Some(Task {
                id: format!("corridor/d{d}/s{seed}"),
                instruction: "reach the end".into(),
                params: Default::default(),
                difficulty: d,
                origin: Default::default(),
            });
            Ok(obs())
        }
        fn step(&mut self, _action: &str) -> Result<StepResult, EnvError> {
            self.left -= 1;
            Ok(StepResult {
                observation: obs(),
                reward: f32::from(self.left == 0),
                done: self.left == 0,
                truncated: false,
                success: self.left == 0,
                info: Default::default(),
            })
        }
        fn task(&self) -> Option<&Task> {
            self.task.as_ref()
        }
        fn expert_action(&mut self) -> Result<Option<String>, EnvError> {
            Ok(Some("walk".into()))
        }
    }

    #[test]
    fn variants_climb_the_knob_and_the_env_expert_vouches_for_them() {
        let env = Corridor {
            task: None,
            left: 0,
        };
        let mut g = KnobVariants::new(Box::new(env), 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let base = TaskVariant {
            template: None,
            difficulty: 0,
            seed: 0,
            posed: None,
        };
        let v1 = g.harder(&base, &mut rng).unwrap();
        assert_eq!(
            (v1.template.as_deref(), v1.difficulty),
            (None, 2),
            "level 0 is level 1, the env as named"
        );
        assert!(g.feasible(&v1));
        let v3 = TaskVariant {
            difficulty: 3,
            ..v1.clone()
        };
        assert!(!g.feasible(&v3), "the env refuses difficulty 3");
        assert!(g.harder(&v3, &mut rng).is_none(), "3 is the top");
        assert_eq!(g.levels_above(None, 0), vec![2, 3]);
        assert_eq!(g.levels_above(None, 2), vec![3]);
        g.expert_steps = 7;
        assert!(
            !g.feasible(&v1),
            "difficulty 2 takes the expert 8 steps, more than 7"
        );
    }
}
