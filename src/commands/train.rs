//! `dreamgym train`: one experiment (a RON file) trained and evaluated, resumable.

use anyhow::Result;
use std::path::{Path, PathBuf};

/// Trains the experiment of `config` into `out` (default `runs/<config stem>`), with `buffer`
/// keeping `out/buffer.dglog`.
pub fn run(
    config: &Path,
    out: Option<PathBuf>,
    resume: bool,
    stop_after: Option<usize>,
    backend: &str,
    quiet: bool,
    buffer: bool,
) -> Result<()> {
    let cfg = crate::experiment::load(config)?;
    let out =
        out.unwrap_or_else(|| PathBuf::from("runs").join(config.file_stem().unwrap_or_default()));
    let device = dreamgym_policy::select_device(backend.parse().map_err(anyhow::Error::msg)?)?;
    crate::experiment::train(
        &cfg,
        &out,
        &device,
        crate::experiment::TrainOptions {
            resume,
            stop_after,
            quiet,
            buffer,
        },
    )
}
