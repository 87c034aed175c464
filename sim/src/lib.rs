//! `dreamgym-sim`: environments (the `Env` trait, the RON scenario engine), behaviour policies
//! for offline data, and episode collection.

pub mod bridge;
pub mod env;
pub mod model;
pub mod policy;
pub mod scenario;

pub use bridge::{BridgeConfig, BridgeEnv};
pub use env::{Env, EnvError, ExpertFault, PosedTask, StepResult, TaskSpec};
pub use policy::{BehaviourPolicy, ExpertFaults, collect_episode, collect_episode_limited};
pub use scenario::{ScenarioEnv, ScenarioError, World};
