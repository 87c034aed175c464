//! `dreamgym`: the CLI and the pipeline that wires the crates together.

pub mod cli;
pub mod collect;
pub mod commands;
pub mod envs;
pub mod experiment;
pub mod files;
pub mod pipeline;
pub mod progress;
pub mod recorder;
pub mod recording_env;
pub mod report;
pub mod ron_file;
pub mod run_lock;
pub mod serve;
pub mod sft;
pub mod task_families;
