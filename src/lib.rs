//! `dreamgym`: the CLI and the pipeline that wires the crates together.

pub mod charts;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod efficiency;
pub mod efficiency_jobs;
pub mod efficiency_report;
pub mod envs;
pub mod experiment;
pub mod files;
pub mod html;
pub mod methods;
pub mod pipeline;
pub mod progress;
pub mod recorder;
pub mod recording_env;
pub mod report;
pub mod ron_file;
pub mod run_config;
pub mod run_lock;
pub mod saving;
pub mod seed_context;
pub mod serve;
pub mod sft;
pub mod stats;
pub mod task_families;
