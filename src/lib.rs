//! `dreamgym`: the CLI and the drivers that wire the crates together, sorted by job:
//!
//! * [`training`] — what one seed of a run trains with: the offline seed data, the experience
//!   models fit on it, the DreamGym loop in the model (`training::synthetic`), training and
//!   sim-to-real in the real env (`training::real`), the curriculum's task families, the config;
//! * [`experiments`] — the drivers named after their commands (`run`, `train`, `efficiency`),
//!   the methods they compare, the saving factor and the statistics;
//! * [`report`] — the run and efficiency reports (HTML, charts);
//! * [`record`] — recording episodes into the replay buffer, replaying synthetic successes in
//!   the real env, SFT export;
//! * [`serve`] — `dreamgym serve`: envs over the OpenEnv protocol;
//! * [`support`] — env ids, RON files, run locks, output files, progress;
//! * [`cli`] and [`commands`] — the command line: `cli` parses and dispatches, each command
//!   owns its flags in `commands/`.

pub mod cli;
pub mod commands;
pub mod experiments;
pub mod record;
pub mod report;
pub mod serve;
pub mod support;
pub mod training;
