//! The RON scenario language and its engine (reference: `docs/scenarios.md`).

pub mod ast;
mod compile;
pub mod engine;
pub mod error;
pub mod expr;
pub mod facts;
mod ground;
pub mod ground_cond;
pub mod grounding;
pub mod instance;
pub mod planner;
pub mod solve;
pub mod world;

pub use engine::ScenarioEnv;
pub use error::ScenarioError;
pub use world::World;
