//! The bodies of the CLI's commands, one file per command (the clap types and the dispatch are
//! in `cli.rs`):
//!
//! * `scenario` — `scenario check` and `play`
//! * `collect` — `collect`
//! * `buffer` — `buffer import|stats|export|repair`
//! * `data` — `data import-adp|export-adp`
//! * `model` — `model eval|llm-check|export-sft`
//! * `policy` — `policy train|eval|serve-env`
//! * `train` — `train`
//! * `run` — `run`
//! * `efficiency` — `efficiency`
//! * `serve` — `serve`

pub mod buffer;
pub mod collect;
pub mod data;
pub mod efficiency;
pub mod model;
pub mod policy;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod train;
