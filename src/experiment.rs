//! `dreamgym train --config experiments/NAME.ron`: one DreamGym training run with a checkpoint
//! after every iteration — seed data, the native experience model, PPO/GRPO in it with the
//! curriculum, then (optionally) sim-to-real — resumable with `--resume`.

use crate::envs::EnvFactory;
use crate::run_config::RunConfig;
use crate::seed_context::{SeedContext, SyntheticLoop, collect_offline};
use anyhow::{Context, Result, bail};
use dreamgym_buffer::{JsonlWriter, Provenance};
use dreamgym_curriculum::Curriculum;
use dreamgym_policy::{
    MetricsLog, RngState, SelectedDevice, Split, TaskSampler, Trainer, checkpoint_extra,
};
use dreamgym_sim::Env;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// An experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Env id (`scenario:PATH` or `bridge:NAME`).
    pub env: String,
    /// Seed.
    pub seed: u64,
    /// Real seed trajectories (JSONL); collected with `run.offline_mix` when absent.
    pub offline: Option<PathBuf>,
    /// Sim-to-real: real steps after the synthetic phase (0: none).
    pub real_budget: u64,
    /// Everything else, as for `dreamgym run` (its `seeds`, `ablations`, `s2r_share` are unused;
    /// `s2r_lr_scale` applies to the real-budget phase).
    pub run: RunConfig,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        Self {
            env: "scenario:scenarios/keys_doors.ron".into(),
            seed: 1,
            offline: None,
            real_budget: 0,
            run: RunConfig::default(),
        }
    }
}

/// Loads an experiment file, naming the file and position on error.
pub fn load(path: &Path) -> Result<ExperimentConfig> {
    crate::ron_file::load_checked(
        path,
        "an experiment, e.g. `(env: \"scenario:scenarios/keys_doors.ron\", run: (iterations: 40))`",
        ExperimentConfig::validate,
    )
}

/// The largest sim-to-real budget accepted: a billion real steps is days of a fast env, and a
/// typo such as `u64::MAX` must be refused rather than run without end.
pub const MAX_REAL_BUDGET: u64 = 1_000_000_000;

impl ExperimentConfig {
    /// Range checks of every setting (the run's fields under `run.`).
    pub fn validate(&self) -> std::result::Result<(), crate::ron_file::RangeError> {
        if self.real_budget > MAX_REAL_BUDGET {
            return Err(crate::ron_file::RangeError {
                field: "real_budget".into(),
                value: self.real_budget.to_string(),
                allowed: format!("at most {MAX_REAL_BUDGET} real steps"),
            });
        }
        self.run
            .validate()
            .map_err(|e| crate::ron_file::RangeError {
                field: format!("run.{}", e.field),
                ..e
            })
    }
}

/// What a checkpoint holds beside the learner: the curriculum, its RNG, the phase, and the
/// length of the run's buffer log at the checkpoint.
#[derive(Serialize, Deserialize)]
struct LoopState {
    curriculum: Curriculum,
    rng: RngState,
    s2r_started: bool,
    synthetic_steps: u64,
    /// Bytes of `buffer.dglog` when the checkpoint was written (`None`: no buffer kept).
    #[serde(default)]
    buffer_bytes: Option<u64>,
}

fn loop_state(
    lp: &SyntheticLoop,
    s2r_started: bool,
    synthetic_steps: u64,
    buffer_bytes: Option<u64>,
) -> serde_json::Value {
    serde_json::to_value(LoopState {
        curriculum: lp.pool.clone(),
        rng: RngState::of(&lp.rng),
        s2r_started,
        synthetic_steps,
        buffer_bytes,
    })
    .expect("loop state serialises")
}

fn read_state(path: &Path) -> Result<LoopState> {
    serde_json::from_value(checkpoint_extra(path)?).with_context(|| {
        format!(
            "{}: the checkpoint holds no curriculum state (written by `policy train`?)",
            path.display()
        )
    })
}

fn restore(lp: &mut SyntheticLoop, s: LoopState, path: &Path) -> Result<(bool, u64)> {
    lp.pool = s.curriculum;
    lp.rng = s
        .rng
        .restore()
        .with_context(|| format!("{}: unreadable RNG state", path.display()))?;
    Ok((s.s2r_started, s.synthetic_steps))
}

/// Opens the run's buffer log: a fresh one for a new run; on resume, the log cut back to the
/// length the checkpoint recorded (what was appended after it belongs to iterations that are
/// run again).
fn open_buffer(path: &Path, resume: Option<&LoopState>) -> Result<crate::recorder::RecorderThread> {
    match resume {
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(anyhow::Error::new(e).context(format!("replacing {}", path.display())));
            }
            _ => {}
        },
        Some(state) => {
            let Some(kept) = state.buffer_bytes else {
                bail!(
                    "--resume: the checkpoint records no buffer length (the run was started with --no-buffer); resume with --no-buffer too"
                );
            };
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| {
                    format!("--resume: opening the run's buffer {}", path.display())
                })?;
            let len = file.metadata()?.len();
            if len < kept {
                bail!(
                    "--resume: {} holds {len} bytes, fewer than the {kept} it held at the checkpoint: it was changed outside this run; refusing to continue it",
                    path.display()
                );
            }
            file.set_len(kept)
                .with_context(|| format!("cutting {} back to the checkpoint", path.display()))?;
            file.sync_all()?;
        }
    }
    crate::recorder::RecorderThread::start(path, &[])
}

/// Runs (or resumes) an experiment into `out`; `stop_after` stops after that many iterations in
/// this invocation. With `buffer`, every episode the learner plays (and the offline data) goes
/// to `out/buffer.dglog`, and a resumed run continues the log as the checkpoint left it.
pub fn train(
    cfg: &ExperimentConfig,
    out: &Path,
    device: &SelectedDevice,
    resume: bool,
    stop_after: Option<usize>,
    quiet: bool,
    buffer: bool,
) -> Result<()> {
    let _lock = crate::run_lock::RunLock::acquire(out)?;
    let factory = EnvFactory::new(&cfg.env, None)?;
    cfg.run
        .policy
        .validate()
        .map_err(|e| anyhow::anyhow!("run.policy: {e}"))?;
    let ckpt = out.join("checkpoint.bin");
    let offline_path = out.join("offline.jsonl");
    let offline = if resume {
        if !ckpt.exists() {
            bail!(
                "--resume: no checkpoint at {} (refusing to start from scratch)",
                ckpt.display()
            );
        }
        dreamgym_buffer::jsonl::read_file(&offline_path)?
    } else {
        let data = match &cfg.offline {
            Some(p) => {
                let data = dreamgym_buffer::jsonl::read_file(p)?;
                factory.check_offline(p, &data)?;
                data
            }
            None => collect_offline(factory.open().as_mut(), &cfg.run, cfg.seed)?,
        };
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let mut w = JsonlWriter::create(&offline_path)?;
        for t in &data {
            w.write(t)?;
        }
        w.finish()?;
        data
    };
    let silent = crate::progress::Progress::silent();
    let state = if resume {
        Some(read_state(&ckpt)?)
    } else {
        None
    };
    let recorder = if buffer {
        Some(open_buffer(&out.join("buffer.dglog"), state.as_ref())?)
    } else {
        None
    };
    let recording = recorder
        .as_ref()
        .map(|r| crate::seed_context::Recording::new(r.handle()));
    let ctx = SeedContext::new(
        &cfg.run, &factory, device, cfg.seed, offline, &silent, recording,
    );
    ctx.record_as("dreamgym");
    if !resume {
        ctx.record_offline();
    }
    let (policy, offline_steps) = (ctx.policy.clone(), ctx.offline_steps());
    let mut lp = ctx.synthetic_loop(true, true, true)?;
    let (mut trainer, mut s2r_started, mut synthetic_steps) = if let Some(state) = state {
        let t = Trainer::resume(&ckpt, device, Some(&ctx.vocab), Some(policy.hidden))?;
        let (s2r, synthetic) = restore(&mut lp, state, &ckpt)?;
        tracing::info!(
            "resumed {} at iteration {}",
            ckpt.display(),
            t.counters().iteration
        );
        (t, s2r, synthetic)
    } else {
        (
            ctx.start_with_envs(false, ctx.cfg.synthetic_envs)?,
            false,
            0,
        )
    };
    let mut log = MetricsLog::open(out, trainer.counters().iteration)?;
    let per_iter = (policy.num_envs * policy.num_steps) as u64;
    let s2r_iters = cfg.real_budget.div_ceil(per_iter.max(1)) as usize;
    let total = cfg.run.iterations + s2r_iters;
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total as u64)
    };
    bar.set_position(trainer.counters().iteration as u64);
    let mut real_envs: Vec<Box<dyn Env>> = vec![];
    let real_split = TaskSampler {
        spec: ctx.spec.clone(),
        split: Split::Train,
    };
    let mut done_here = 0;
    loop {
        if stop_after.is_some_and(|n| done_here >= n) {
            bar.finish_and_clear();
            return Ok(());
        }
        let it = trainer.counters().iteration;
        let m = if it < cfg.run.iterations && !s2r_started {
            let m = lp.step(&mut trainer)?;
            synthetic_steps = trainer.counters().env_steps;
            m
        } else if s2r_iters > 0 {
            if !s2r_started {
                ctx.begin_sim_to_real(&mut trainer, s2r_iters);
                s2r_started = true;
            }
            if trainer.finished() {
                break;
            }
            if real_envs.is_empty() {
                // (on a fresh start and on a resume inside this phase alike)
                ctx.record_as("dreamgym_s2r");
                real_envs = (0..policy.num_envs)
                    .map(|_| ctx.recorded(factory.open(), Provenance::Real))
                    .collect();
            }
            ctx.tell_recording(&trainer);
            trainer.iterate(&mut real_envs, &real_split)?
        } else {
            break;
        };
        // the row before the checkpoint: a kill between them leaves a row past the checkpoint,
        // which resuming drops and redoes, never a checkpoint without its row
        log.append(&m)?;
        // the buffer as of this iteration (its episodes in play recorded as abandoned), durable
        // before the checkpoint that names its length
        let buffer_bytes = ctx.sync_recording()?;
        trainer.save_with_extra(
            &ckpt,
            loop_state(&lp, s2r_started, synthetic_steps, buffer_bytes),
        )?;
        bar.suspend(|| {
            tracing::info!(
                "it {:>4} {} success {:.2} return {:.2}",
                m.iteration,
                if s2r_started { "real " } else { "model" },
                m.success,
                m.mean_return
            )
        });
        bar.inc(1);
        done_here += 1;
    }
    bar.finish_and_clear();
    let success = ctx.evaluate(&trainer)?;
    let real_steps = trainer.counters().env_steps.saturating_sub(synthetic_steps);
    let eval = serde_json::json!({
        "env": cfg.env,
        "held_out_success": success,
        "episodes": cfg.run.eval_episodes,
        "offline_steps": offline_steps,
        "synthetic_steps": synthetic_steps,
        "real_steps": real_steps,
        "curriculum": lp.pool.history(),
    });
    std::fs::write(out.join("eval.json"), serde_json::to_string_pretty(&eval)?)?;
    println!(
        "held-out success {success:.3} ({} synthetic steps, {real_steps} real steps, {offline_steps} offline steps)",
        synthetic_steps
    );
    // the envs first (nothing is in play since the last checkpoint), then the log's last sync
    drop(real_envs);
    drop(lp);
    if let Some(r) = recorder {
        r.stop()?;
    }
    Ok(())
}
