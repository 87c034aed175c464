//! The CLI's commands, one file per command, each with its flags (clap types) and its body
//! (`cli.rs` holds the top-level command and the dispatch; `flags` the flags several share):
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
pub mod flags;
pub mod model;
pub mod policy;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod train;
