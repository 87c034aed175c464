//! `dreamgym efficiency --jobs N` with N > 1: each seed in a process of its own (this binary,
//! `--jobs 1`, into `OUT/seeds/seed-S`), N at once, their per-seed points read back and
//! summarised together as `--report-only` does.
//!
//! Why processes and not threads: burn keeps process-wide state (the autodiff graph registry,
//! the backend's RNG), and two learners updating at once in one process could, now and then,
//! accumulate a gradient in another order — a seed's figures then depended on `--jobs`. In a
//! process of its own a seed gives what `--jobs 1` gives, bit for bit.

use crate::experiments::efficiency::{
    EfficiencyConfig, EfficiencySummary, SeedPoints, read_points,
};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Runs the seeds of `cfg` in child processes, `jobs` at once; `seed_done` gets the merged
/// summary after each seed but the last.
pub fn run(
    env_id: &str,
    cfg: &EfficiencyConfig,
    backend: &str,
    out: &Path,
    jobs: usize,
    seed_done: &mut dyn FnMut(&EfficiencySummary) -> Result<()>,
) -> Result<EfficiencySummary> {
    let started = std::time::Instant::now();
    let exe = std::env::current_exe().context("finding the dreamgym binary to run seeds in")?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<(u64, Result<PathBuf>)>();
    let mut done: BTreeMap<u64, SeedPoints> = BTreeMap::new();
    let mut summary =
        EfficiencySummary::before_any_seed(env_id.into(), cfg.clone(), backend.into());
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..jobs.clamp(1, cfg.run.seeds.len()) {
            let tx = tx.clone();
            let (next, failed, exe) = (&next, &failed, &exe);
            scope.spawn(move || {
                use std::sync::atomic::Ordering::SeqCst;
                while !failed.load(SeqCst) {
                    let Some(&seed) = cfg.run.seeds.get(next.fetch_add(1, SeqCst)) else {
                        break;
                    };
                    let result = run_child(exe, env_id, cfg, backend, out, seed);
                    if result.is_err() {
                        failed.store(true, SeqCst);
                    }
                    if tx.send((seed, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (seed, result) in rx {
            let child = result
                .and_then(|dir| read_points(&dir.join("summary.json")))
                .with_context(|| format!("seed {seed}"));
            // a seed that failed, or whose summary cannot be read, stops the seeds not started
            let child =
                child.inspect_err(|_| failed.store(true, std::sync::atomic::Ordering::SeqCst))?;
            done.extend(child.done);
            // the backend the seeds ran on (not the choice given, e.g. `auto`)
            summary.backend = child.backend;
            // in the configuration's seed order, whatever order they finished in
            summary.seeds_done = cfg
                .run
                .seeds
                .iter()
                .copied()
                .filter(|s| done.contains_key(s))
                .collect();
            summary.update(&done, started);
            if !summary.complete {
                seed_done(&summary)?;
            }
        }
        Ok(())
    })?;
    Ok(summary)
}

/// One seed in a child process; returns its output directory.
fn run_child(
    exe: &Path,
    env_id: &str,
    cfg: &EfficiencyConfig,
    backend: &str,
    out: &Path,
    seed: u64,
) -> Result<PathBuf> {
    let dir = out.join("seeds").join(format!("seed-{seed}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = dir.join("config.ron");
    let one = EfficiencyConfig {
        run: crate::training::config::RunConfig {
            seeds: vec![seed],
            ..cfg.run.clone()
        },
        ..cfg.clone()
    };
    let text = ron::ser::to_string_pretty(&one, ron::ser::PrettyConfig::default())
        .context("writing a seed's settings")?;
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    let status = std::process::Command::new(exe)
        .args(["efficiency", env_id, "--jobs", "1", "--backend", backend])
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    if !status.success() {
        bail!(
            "its process ({} efficiency ... --out {}) failed: {status}",
            exe.display(),
            dir.display()
        );
    }
    Ok(dir)
}
