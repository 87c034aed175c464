//! `dreamgym train`: one experiment (a RON file) trained and evaluated, resumable.

use anyhow::Result;
use std::path::PathBuf;

/// The flags of `dreamgym train`.
#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// Experiment file (RON), e.g. experiments/keys-doors.ron
    #[arg(long)]
    pub config: PathBuf,
    /// Output directory (default: runs/<config file name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from OUT/checkpoint.bin.
    #[arg(long)]
    pub resume: bool,
    /// Stop after this many iterations now (resumable).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// auto | wgpu | cpu
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Do not keep the run's experience in OUT/buffer.dglog (a run started without it
    /// resumes without it).
    #[arg(long)]
    pub no_buffer: bool,
    /// For bridge:NAME envs: the command that runs your own bridge (docs/bridge.md) instead of
    /// the shipped Python one (overrides the experiment's `run.bridge_cmd`).
    #[arg(long)]
    pub bridge_cmd: Option<String>,
}

/// Trains the experiment of `--config` into `--out` (default `runs/<config stem>`), keeping
/// `out/buffer.dglog` unless `--no-buffer`.
pub fn run(args: TrainArgs) -> Result<()> {
    let TrainArgs {
        config,
        out,
        resume,
        stop_after,
        backend,
        quiet,
        no_buffer,
        bridge_cmd,
    } = args;
    let (config, backend, buffer) = (config.as_path(), backend.as_str(), !no_buffer);
    let mut cfg = crate::experiments::train::load(config)?;
    if bridge_cmd.is_some() {
        cfg.run.bridge_cmd = bridge_cmd;
    }
    let out =
        out.unwrap_or_else(|| PathBuf::from("runs").join(config.file_stem().unwrap_or_default()));
    let device = dreamgym_policy::select_device(backend.parse().map_err(anyhow::Error::msg)?)?;
    crate::experiments::train::train(
        &cfg,
        &out,
        &device,
        crate::experiments::train::TrainOptions {
            resume,
            stop_after,
            quiet,
            buffer,
        },
    )
}
