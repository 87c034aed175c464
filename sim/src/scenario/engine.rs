//! `ScenarioEnv`: the scenario engine as an [`Env`].

use super::error::ScenarioError;
use super::instance::{Instance, choose_level, instantiate};
use super::planner::{PlannerLimits, plan};
use super::world::World;
use crate::env::{Env, EnvError, StepResult, TaskSpec};
use dreamgym_buffer::{Observation, Task};
use rand::SeedableRng;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

/// A real environment running a compiled scenario.
pub struct ScenarioEnv {
    world: Arc<World>,
    id: String,
    inst: Option<Instance>,
    state: Vec<u64>,
    steps: u32,
    over: bool,
    plan: Option<(Vec<u64>, VecDeque<u32>)>,
    scratch: Vec<u32>,
}

impl ScenarioEnv {
    /// Load a scenario file; the env id is `scenario:<path>`.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let world = World::load(path)?;
        Ok(Self::new(
            Arc::new(world),
            format!("scenario:{}", path.display()),
        ))
    }

    /// An env over an already compiled world (cheap: worlds are shared).
    pub fn new(world: Arc<World>, id: String) -> Self {
        Self {
            world,
            id,
            inst: None,
            state: vec![],
            steps: 0,
            over: false,
            plan: None,
            scratch: vec![],
        }
    }

    /// The compiled world.
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    /// The grounded instance of the current episode.
    pub fn instance(&self) -> Option<&Instance> {
        self.inst.as_ref()
    }

    /// The current state bitset.
    pub fn state(&self) -> &[u64] {
        &self.state
    }

    /// Steps taken in this episode.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Build the instance for a spec and seed without starting an episode.
    pub fn make_instance(&self, spec: &TaskSpec, seed: u64) -> Result<Instance, EnvError> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let task_err = |message: String| EnvError::Task {
            env: self.id.clone(),
            message,
        };
        let (t, level) = choose_level(
            &self.world,
            spec.template.as_deref(),
            spec.difficulty,
            &mut rng,
        )
        .map_err(task_err)?;
        instantiate(&self.world, t, level, seed, &mut rng).map_err(|e| task_err(e.to_string()))
    }

    fn observation(&mut self, feedback: String) -> Observation {
        let inst = self.inst.as_ref().expect("reset before observing");
        inst.applicable(&self.state, &mut self.scratch);
        let mut admissible: Vec<String> = Vec::with_capacity(self.scratch.len());
        for &a in &self.scratch {
            let t = &inst.actions()[a as usize].text;
            if !admissible.iter().any(|x| x == t) {
                admissible.push(t.clone());
            }
        }
        Observation {
            lines: inst.render(&self.state),
            instruction: inst.task.instruction.clone(),
            admissible,
            feedback,
        }
    }

    /// Whether the task's goal holds in the current state (at reset: a task with nothing to do).
    pub fn goal_holds(&self) -> bool {
        self.inst.as_ref().is_some_and(|i| i.is_goal(&self.state))
    }

    /// The first applicable ground action with this text.
    fn resolve(&self, text: &str) -> Option<u32> {
        self.inst.as_ref()?.resolve(text, &self.state)
    }
}

impl Env for ScenarioEnv {
    fn id(&self) -> &str {
        &self.id
    }

    fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError> {
        spec.refuse_posed(&self.id)?;
        let inst = self.make_instance(spec, seed)?;
        self.state = inst.init.clone();
        self.inst = Some(inst);
        self.steps = 0;
        self.over = false;
        self.plan = None;
        Ok(self.observation(String::new()))
    }

    fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        if self.inst.is_none() {
            return Err(EnvError::NotReset {
                env: self.id.clone(),
            });
        }
        if self.over {
            return Err(EnvError::EpisodeOver {
                env: self.id.clone(),
            });
        }
        let action = action.trim();
        let resolved = self.resolve(action);
        let inst = self.inst.as_ref().unwrap();
        let mut info = BTreeMap::new();
        let feedback = match resolved {
            Some(a) => {
                inst.apply(a, &mut self.state);
                info.insert("valid".into(), "true".into());
                inst.message(a, &self.state)
            }
            None => {
                info.insert("valid".into(), "false".into());
                inst.failure_message(action, &self.state)
            }
        };
        self.steps += 1;
        let (mut reward, mut done, mut success, mut truncated) = (0.0, false, false, false);
        if inst.is_goal(&self.state) {
            (reward, done, success) = (1.0, true, true);
        } else if inst.is_dead_end(&self.state) {
            (reward, done) = (inst.partial_credit(&self.state), true);
        } else if self.steps >= inst.max_steps {
            truncated = true;
        }
        self.over = done || truncated;
        Ok(StepResult {
            observation: self.observation(feedback),
            reward,
            done,
            truncated,
            success,
            info,
        })
    }

    fn task(&self) -> Option<&Task> {
        self.inst.as_ref().map(|i| &i.task)
    }

    fn expert_action(&mut self) -> Result<Option<String>, EnvError> {
        let Some(inst) = self.inst.as_ref() else {
            return Err(EnvError::NotReset {
                env: self.id.clone(),
            });
        };
        let cached = match &mut self.plan {
            Some((expected, rest)) if *expected == self.state && !rest.is_empty() => {
                rest.pop_front()
            }
            _ => None,
        };
        let next = match cached {
            Some(a) => Some(a),
            None => {
                let limits = PlannerLimits {
                    max_depth: inst.max_steps.saturating_sub(self.steps).max(1),
                    ..Default::default()
                };
                match plan(inst, &self.state, limits) {
                    Some(p) if !p.is_empty() => {
                        let mut rest: VecDeque<u32> = p.into();
                        let first = rest.pop_front();
                        self.plan = Some((vec![], rest));
                        first
                    }
                    _ => None,
                }
            }
        };
        let Some(a) = next else {
            self.plan = None;
            return Ok(None);
        };
        // remember the state the rest of the plan expects after this action
        let mut expected = self.state.clone();
        inst.apply(a, &mut expected);
        if let Some((e, _)) = &mut self.plan {
            *e = expected;
        }
        Ok(Some(inst.actions()[a as usize].text.clone()))
    }
}
