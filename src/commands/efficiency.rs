//! `dreamgym efficiency`: real interactions saved, against real_only trained to convergence.

use crate::experiments::efficiency::EfficiencyConfig;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The flags of `dreamgym efficiency`.
#[derive(clap::Args, Debug)]
pub struct EfficiencyArgs {
    /// A scenario file (scenarios/household.ron) or an env id (scenario:PATH, bridge:NAME).
    pub env: String,
    /// Settings in RON (see `efficiency::EfficiencyConfig`; e.g.
    /// experiments/efficiency-household.ron).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory.
    #[arg(long, default_value = "runs/efficiency")]
    pub out: PathBuf,
    /// auto | wgpu | cpu
    #[arg(long, default_value = "auto")]
    pub backend: String,
    /// Seeds, comma-separated (overrides the config).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Seeds run at once (each on its own thread; results do not depend on it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// Train nothing: recompute the headline, report and plot of OUT from the per-seed
    /// points in OUT/summary.json (e.g. after an upgrade).
    #[arg(long)]
    pub report_only: bool,
    /// For bridge:NAME envs: the command that runs your own bridge (docs/bridge.md) instead of
    /// the shipped Python one (overrides the config's `bridge_cmd`).
    #[arg(long)]
    pub bridge_cmd: Option<String>,
}

/// Runs the experiment (`EfficiencyConfig` from `--config`, else the embedded defaults; `--seeds`
/// and `--bridge-cmd` override its own) with `--jobs` seeds at once, and writes `summary.json`,
/// `report.html` and `efficiency.svg` to `--out` (after every seed too, marked incomplete). With
/// `--report-only`, recomputes them from `out/summary.json`'s per-seed points instead, training
/// nothing.
pub fn run(args: EfficiencyArgs) -> Result<()> {
    let EfficiencyArgs {
        env,
        config,
        out,
        backend,
        seeds,
        jobs,
        report_only,
        bridge_cmd,
    } = args;
    let (env, config, out, backend, jobs) = (
        env.as_str(),
        config.as_deref(),
        out.as_path(),
        backend.as_str(),
        usize::from(jobs),
    );
    if report_only {
        let _lock = crate::support::run_lock::RunLock::acquire(out)?;
        let summary = crate::experiments::efficiency::resummarise(&out.join("summary.json"))?;
        let id = crate::support::envs::env_id_of(env);
        if summary.env != id {
            anyhow::bail!(
                "{}: the summary is of {}, not {id}",
                out.join("summary.json").display(),
                summary.env
            );
        }
        return finish(out, &summary);
    }
    let mut cfg = match config {
        Some(path) => crate::support::ron_file::load_checked::<EfficiencyConfig>(
            path,
            "an EfficiencyConfig, e.g. `(real_budgets: [5000, 20000], s2r_budgets: [1000], run: (seeds: [1, 2, 3]))`",
            EfficiencyConfig::validate,
        )?,
        None => EfficiencyConfig::default(),
    };
    if let Some(s) = seeds {
        cfg.run.seeds = s;
    }
    if bridge_cmd.is_some() {
        cfg.run.bridge_cmd = bridge_cmd;
    }
    let id = crate::support::envs::env_id_of(env);
    let _lock = crate::support::run_lock::RunLock::acquire(out)?;
    if jobs > 1 && cfg.run.seeds.len() > 1 {
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("efficiency settings: {e}"))?;
        let summary =
            crate::experiments::jobs::run(&id, &cfg, backend, out, jobs, &mut |partial| {
                crate::report::efficiency::write(out, partial)
            })?;
        return finish(out, &summary);
    }
    let device = dreamgym_policy::select_device(backend.parse().map_err(anyhow::Error::msg)?)?;
    let progress = crate::support::progress::Progress::new(cfg.planned_iterations(), false);
    let summary =
        crate::experiments::efficiency::run(&id, &cfg, &device, &progress, &mut |partial| {
            crate::report::efficiency::write(out, partial)?;
            progress.partial_written(&partial.seeds_done, &out.join("summary.json"));
            Ok(())
        })?;
    progress.finish();
    finish(out, &summary)
}

/// Writes the summary, report and plot and prints the curves and the headline.
fn finish(out: &Path, summary: &crate::experiments::efficiency::EfficiencySummary) -> Result<()> {
    crate::report::efficiency::write(out, summary)?;
    println!(
        "{:<14}{:>10}{:>14}{:>10}{:>20}",
        "method", "budget", "real inter.", "success", "95% CI"
    );
    for (name, curve) in &summary.curves {
        for p in curve {
            println!(
                "{:<14}{:>10}{:>14.0}{:>10.3}{:>20}",
                name,
                p.budget,
                p.real_interactions,
                p.success,
                format!("[{:.3}, {:.3}]", p.ci_low, p.ci_high)
            );
        }
    }
    if let Some(h) = &summary.headline {
        println!(
            "real_only at its largest budget: {:.3} ({}); DreamGym with 0 online steps: {:.3} of it",
            h.real_only.success,
            if h.real_only.converged {
                "converged"
            } else {
                "NOT converged"
            },
            h.dreamgym.share_of_real_only.mean
        );
        if let Some(m) = &h.dreamgym.saving {
            println!(
                "DreamGym with 0 online steps: saving factor {:?} {:.3} ({:.0} real interactions for real_only against {:.0})",
                m.bound, m.factor, m.baseline_real_interactions, m.method_real_interactions
            );
        }
        for s in &h.s2r {
            if let Some(m) = &s.mean_curves {
                let online = s
                    .online_only
                    .map(|o| format!("{:?} {:.3}", o.bound, o.factor))
                    .unwrap_or_else(|| "n/a".into());
                println!(
                    "DreamGym-S2R at {} online steps: success {:.3}, saving factor {:?} {:.3} (offline + online steps), {online} (online steps only, the paper's counting)",
                    s.budget, m.target_success, m.bound, m.factor
                );
            }
        }
    }
    println!(
        "wrote {}, {} and {} ({:.0} s)",
        out.join("summary.json").display(),
        out.join("report.html").display(),
        out.join("efficiency.svg").display(),
        summary.seconds
    );
    Ok(())
}
