//! Episodes into and out of the replay buffer: the recorder thread, the env wrapper that
//! records what is played, replaying synthetic successes in the real env, and SFT export.

pub mod env;
pub mod recorder;
pub mod replay;
pub mod sft;
