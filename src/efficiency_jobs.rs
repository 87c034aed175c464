//! `dreamgym efficiency --jobs N` with N > 1: each seed in a process of its own (this binary,
//! `--jobs 1`, into `OUT/seeds/seed-S`), N at once, their per-seed points merged into
//! `OUT/summary.json` and summarised as `--report-only` would.
//!
//! Why processes and not threads: burn keeps process-wide state (the autodiff graph registry,
//! the backend's RNG), and two learners updating at once in one process could, now and then,
//! accumulate a gradient in another order — a seed's figures then depended on `--jobs`. In a
//! process of its own a seed gives what `--jobs 1` gives, bit for bit.

use crate::efficiency::{EfficiencyConfig, EfficiencySummary, resummarise};
use anyhow::{Context, Result, bail};
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
    let mut finished: Vec<(u64, PathBuf)> = vec![];
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
            finished.push((seed, result.with_context(|| format!("seed {seed}"))?));
            let summary = merge(cfg, out, &finished, started)?;
            if !summary.complete {
                seed_done(&summary)?;
            }
        }
        Ok(())
    })?;
    merge(cfg, out, &finished, started)
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
        run: crate::run_config::RunConfig {
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

/// The summary of the seeds `finished` so far: their per-seed points side by side in the
/// configuration's seed order, written to `out/summary.json` and summarised from there.
fn merge(
    cfg: &EfficiencyConfig,
    out: &Path,
    finished: &[(u64, PathBuf)],
    started: std::time::Instant,
) -> Result<EfficiencySummary> {
    let mut merged: Option<serde_json::Value> = None;
    for &seed in &cfg.run.seeds {
        let Some((_, dir)) = finished.iter().find(|(s, _)| *s == seed) else {
            continue;
        };
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let one: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
        match &mut merged {
            None => merged = Some(one),
            Some(m) => {
                let curves = m["curves"]
                    .as_object_mut()
                    .context("a summary without curves")?;
                for (method, curve) in curves.iter_mut() {
                    let points = curve.as_array_mut().context("a curve that is not a list")?;
                    for (i, point) in points.iter_mut().enumerate() {
                        let theirs = one["curves"][method][i]["seeds"].as_array().cloned();
                        let Some(theirs) = theirs else {
                            bail!("{}: no point {i} of {method}", path.display());
                        };
                        point["seeds"]
                            .as_array_mut()
                            .context("a point without seeds")?
                            .extend(theirs);
                    }
                }
                m["seeds_done"]
                    .as_array_mut()
                    .context("a summary without seeds_done")?
                    .push(seed.into());
            }
        }
    }
    let mut merged = merged.context("no seed finished")?;
    merged["config"] = serde_json::to_value(cfg)?;
    merged["seconds"] = started.elapsed().as_secs_f64().into();
    let path = out.join("summary.json");
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(&path, serde_json::to_string_pretty(&merged)?)
        .with_context(|| format!("writing {}", path.display()))?;
    resummarise(&path)
}
