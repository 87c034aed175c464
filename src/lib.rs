//! `dreamgym`: the CLI and the pipeline that wires the crates together.

pub mod cli;
pub mod collect;
pub mod envs;
pub mod policy_cmd;
pub mod sft;
