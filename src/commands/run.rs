//! `dreamgym run`: the whole DreamGym comparison on one env, with its report.

use anyhow::Result;
use std::path::PathBuf;

/// The flags of `dreamgym run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A scenario file (scenarios/household.ron) or an env id (scenario:PATH, bridge:NAME).
    pub env: String,
    /// Settings in RON (see `training::config::RunConfig`; fields not given take the embedded defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "runs/latest")]
    pub out: PathBuf,
    /// auto | wgpu | cpu
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Seeds, comma-separated (overrides the config).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Policy iterations (overrides the config).
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Skip the ablations.
    #[arg(long)]
    pub no_ablations: bool,
    /// Do not write the run's experience to OUT/buffer.dglog (about 1.9 KB per transition).
    #[arg(long)]
    pub no_buffer: bool,
    /// Offline seed data (real trajectories, JSONL) for every seed instead of collecting it;
    /// episodes on held-out instances are left out (and counted in the report's notes).
    #[arg(long, value_name = "FILE.jsonl")]
    pub offline: Option<PathBuf>,
    /// For bridge:NAME envs: the command that runs your own bridge (docs/bridge.md) instead of
    /// the shipped Python one (overrides the config's `bridge_cmd`).
    #[arg(long)]
    pub bridge_cmd: Option<String>,
}

/// Runs the comparison (`RunConfig` from `--config`, else the embedded defaults, with the flags'
/// overrides: seeds, iterations, no ablations, bridge command) and writes `summary.json` and
/// `report.html` to `--out`, and unless `--no-buffer` the run's experience to
/// `out/buffer.dglog`; `--offline` is the seed data of every seed when given.
pub fn run(args: RunArgs) -> Result<()> {
    use crate::experiments::run::RunConfig;
    let RunArgs {
        env,
        config,
        out,
        backend,
        seeds,
        iterations,
        no_ablations,
        no_buffer,
        offline,
        bridge_cmd,
    } = args;
    let (env, out, backend, buffer) = (env.as_str(), out.as_path(), backend.as_str(), !no_buffer);
    let mut cfg = match config.as_deref() {
        Some(path) => crate::support::ron_file::load_checked::<RunConfig>(
            path,
            "a RunConfig, e.g. `(seeds: [1, 2, 3], iterations: 60)`",
            RunConfig::validate,
        )?,
        None => RunConfig::default(),
    };
    if let Some(s) = seeds {
        cfg.seeds = s;
    }
    if let Some(n) = iterations {
        cfg.iterations = n;
    }
    if no_ablations {
        cfg.ablations = false;
    }
    if bridge_cmd.is_some() {
        cfg.bridge_cmd = bridge_cmd;
    }
    let id = crate::support::envs::env_id_of(env);
    let given = offline
        .as_deref()
        .map(|p| {
            crate::training::offline::GivenOffline::load(
                p,
                &crate::support::envs::EnvFactory::new(&id, cfg.bridge_cmd.as_deref())?,
                cfg.train_split(),
            )
        })
        .transpose()?;
    let _lock = crate::support::run_lock::RunLock::acquire(out)?;
    let device = dreamgym_policy::select_device(backend.parse().map_err(anyhow::Error::msg)?)?;
    let progress = crate::support::progress::Progress::new(
        crate::experiments::run::planned_iterations(&cfg),
        false,
    );
    // the run's experience: a fresh log per run (a run in the same directory replaces it, as
    // it replaces the summary)
    let buffer_path = out.join("buffer.dglog");
    match std::fs::remove_file(&buffer_path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(
                anyhow::Error::new(e).context(format!("replacing {}", buffer_path.display()))
            );
        }
        _ => {}
    }
    let recorder = buffer
        .then(|| crate::record::recorder::RecorderThread::start(&buffer_path, &[]))
        .transpose()?;
    let handle = recorder.as_ref().map(|r| r.handle());
    let summary = crate::experiments::run::run(
        &id,
        &cfg,
        &device,
        &progress,
        handle.as_ref(),
        given.as_ref(),
        &mut |partial| {
            crate::report::run::write(out, partial)?;
            progress.partial_written(&partial.seeds_done, &out.join("summary.json"));
            Ok(())
        },
    )?;
    progress.finish();
    drop(handle);
    if let Some(r) = recorder {
        r.stop()?;
    }
    crate::report::run::write(out, &summary)?;
    println!(
        "{:<32}{:>9}{:>20}{:>12}{:>12}{:>12}{:>12}",
        "method", "success", "95% CI", "real", "offline", "synthetic", "model→real"
    );
    for (name, m) in &summary.methods {
        println!(
            "{:<32}{:>9.3}{:>20}{:>12}{:>12}{:>12}{:>12}",
            name,
            m.success,
            format!("[{:.3}, {:.3}]", m.ci_low, m.ci_high),
            m.real_steps,
            m.offline_steps,
            m.synthetic_steps,
            crate::report::run::model_real_gap(m)
        );
    }
    if let Some(line) = crate::report::run::expert_faults_line(&summary.offline) {
        println!("{line}");
    }
    let experience = if buffer {
        format!(", and the run's experience to {}", buffer_path.display())
    } else {
        String::new()
    };
    println!(
        "wrote {} and {}{experience} ({:.0} s)",
        out.join("summary.json").display(),
        out.join("report.html").display(),
        summary.seconds
    );
    Ok(())
}
