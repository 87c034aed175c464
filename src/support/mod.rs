//! What every command leans on: env ids and the env factory, RON files with located errors,
//! run locks, output files that must not overwrite inputs, progress lines.

pub mod envs;
pub mod files;
pub mod progress;
pub mod ron_file;
pub mod run_lock;
