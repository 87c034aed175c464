//! `dreamgym train --config experiments/NAME.ron`: one DreamGym training run with a checkpoint
//! after every iteration — seed data, the native experience model, PPO/GRPO in it with the
//! curriculum, then (optionally) sim-to-real — resumable with `--resume`.

use crate::support::envs::EnvFactory;
use crate::training::checkpointed::Checkpointed;
use crate::training::config::{MAX_REAL_BUDGET, RunConfig};
use crate::training::context::SeedContext;
use crate::training::offline::collect_offline;
use crate::training::real::{Next, SimToRealPlan};
use crate::training::synthetic::{Switches, SyntheticLoop};
use anyhow::{Context, Result, bail};
use dreamgym_buffer::JsonlWriter;
use dreamgym_curriculum::Curriculum;
use dreamgym_policy::{IterationMetrics, RngState, SelectedDevice, Trainer, checkpoint_extra};
use dreamgym_sim::model::retrieval::Retrievable;
use dreamgym_sim::policy::ExpertFaults;
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
    /// `s2r_lr_scale` applies to the real-budget phase; `s2r_rounds` and
    /// `s2r_synthetic_iterations` must stay 1 and 0).
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
    crate::support::ron_file::load_checked(
        path,
        "an experiment, e.g. `(env: \"scenario:scenarios/keys_doors.ron\", run: (iterations: 40))`",
        ExperimentConfig::validate,
    )
}

impl ExperimentConfig {
    /// Range checks of every setting (the run's fields under `run.`).
    pub fn validate(&self) -> std::result::Result<(), crate::support::ron_file::RangeError> {
        if self.real_budget > MAX_REAL_BUDGET {
            return Err(crate::support::ron_file::RangeError {
                field: "real_budget".into(),
                value: self.real_budget.to_string(),
                allowed: format!("at most {MAX_REAL_BUDGET} real steps"),
            });
        }
        // sim-to-real here is `dreamgym run`'s procedure, checkpointed every iteration: in one
        // round without model iterations, since a run stopped inside rounds with a refit model
        // could not resume (their real episodes are not in the checkpoint); settings it would
        // ignore are refused
        if self.run.s2r_rounds != 1 || self.run.s2r_synthetic_iterations != 0 {
            return Err(crate::support::ron_file::RangeError {
                field: "run.s2r_rounds / run.s2r_synthetic_iterations".into(),
                value: format!(
                    "{} / {}",
                    self.run.s2r_rounds, self.run.s2r_synthetic_iterations
                ),
                allowed: "1 / 0 in `dreamgym train` (resumable sim-to-real is one real round; \
                          `dreamgym run` does rounds with model iterations)"
                    .into(),
            });
        }
        self.run
            .validate()
            .map_err(|e| crate::support::ron_file::RangeError {
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

fn loop_state(lp: &SyntheticLoop, phase: &Phase, buffer_bytes: Option<u64>) -> serde_json::Value {
    serde_json::to_value(LoopState {
        curriculum: lp.pool.clone(),
        rng: RngState::of(&lp.rng),
        s2r_started: phase.s2r_started,
        synthetic_steps: phase.synthetic_steps,
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
fn open_buffer(
    path: &Path,
    resume: Option<&LoopState>,
) -> Result<crate::record::recorder::RecorderThread> {
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
    crate::record::recorder::RecorderThread::start(path, &[])
}

/// The seed data of a run: on resume, what the first invocation wrote to `out/offline.jsonl`;
/// otherwise the user's file (checked against the env) or a fresh collection, written there.
fn offline_data(
    cfg: &ExperimentConfig,
    factory: &EnvFactory,
    out: &Path,
    resume: bool,
) -> Result<Vec<dreamgym_buffer::Trajectory>> {
    let offline_path = out.join("offline.jsonl");
    if resume {
        return Ok(dreamgym_buffer::jsonl::read_file(&offline_path)?);
    }
    let data = match &cfg.offline {
        // as `dreamgym run --offline`: episodes outside the training split are left out
        Some(p) => {
            let given =
                crate::training::offline::GivenOffline::load(p, factory, cfg.run.train_split())?;
            if given.left_out > 0 {
                tracing::info!(
                    "{}: {} episode(s) outside the {} split left out of the seed data",
                    p.display(),
                    given.left_out,
                    cfg.run.train_split().name()
                );
            }
            given.trajectories
        }
        None => collect_offline(
            factory.open().as_mut(),
            &cfg.run,
            cfg.seed,
            &mut ExpertFaults::default(),
        )?,
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = JsonlWriter::create(&offline_path)?;
    for t in &data {
        w.write(t)?;
    }
    w.finish()?;
    Ok(data)
}

/// How one invocation of [`train`] runs: resuming or not, for how long, how loudly, with or
/// without the run's buffer log.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions {
    /// Continue from `out/checkpoint.bin` (an error when there is none).
    pub resume: bool,
    /// Stop after this many iterations in this invocation (the checkpoint stays resumable).
    pub stop_after: Option<usize>,
    /// No progress bar.
    pub quiet: bool,
    /// Keep `out/buffer.dglog` (offline data and every episode the learner plays).
    pub buffer: bool,
}

/// Where the learner is: the phase and the synthetic steps taken so far (what a checkpoint
/// restores beside the trainer and the curriculum).
struct Phase {
    s2r_started: bool,
    synthetic_steps: u64,
}

/// Runs (or resumes) an experiment into `out`. With `opts.buffer`, every episode the learner
/// plays (and the offline data) goes to `out/buffer.dglog`, and a resumed run continues the log
/// as the checkpoint left it.
pub fn train(
    cfg: &ExperimentConfig,
    out: &Path,
    device: &SelectedDevice,
    opts: TrainOptions,
) -> Result<()> {
    let _lock = crate::support::run_lock::RunLock::acquire(out)?;
    let factory = EnvFactory::new(&cfg.env, cfg.run.bridge_cmd.as_deref())?;
    cfg.run
        .policy
        .validate()
        .map_err(|e| anyhow::anyhow!("run.policy: {e}"))?;
    let ckpt = out.join("checkpoint.bin");
    if opts.resume && cfg.run.retrievable != Retrievable::Real {
        bail!(
            "--resume: run.retrievable is {:?}, and the synthetic episodes the model was shown are not in the checkpoint; only runs with `retrievable: Real` resume exactly",
            cfg.run.retrievable
        );
    }
    if opts.resume && !ckpt.exists() {
        bail!(
            "--resume: no checkpoint at {} (refusing to start from scratch)",
            ckpt.display()
        );
    }
    let offline = offline_data(cfg, &factory, out, opts.resume)?;
    let silent = crate::support::progress::Progress::silent();
    let state = if opts.resume {
        Some(read_state(&ckpt)?)
    } else {
        None
    };
    let recorder = if opts.buffer {
        Some(open_buffer(&out.join("buffer.dglog"), state.as_ref())?)
    } else {
        None
    };
    let recording = recorder
        .as_ref()
        .map(|r| crate::training::context::Recording::new(r.handle()));
    let ctx = SeedContext::new(
        &cfg.run, &factory, device, cfg.seed, offline, &silent, recording,
    );
    ctx.record_as("dreamgym");
    if !opts.resume {
        ctx.record_offline();
    }
    let mut lp = ctx.synthetic_loop(Switches::ALL)?;
    let (mut trainer, mut phase) = if let Some(state) = state {
        let t = Trainer::resume(&ckpt, device, Some(&ctx.vocab), Some(ctx.policy.hidden))?;
        let (s2r_started, synthetic_steps) = restore(&mut lp, state, &ckpt)?;
        tracing::info!(
            "resumed {} at iteration {}",
            ckpt.display(),
            t.counters().iteration
        );
        (
            t,
            Phase {
                s2r_started,
                synthetic_steps,
            },
        )
    } else {
        let t = ctx.start_with_envs(false, ctx.cfg.synthetic_envs)?;
        (
            t,
            Phase {
                s2r_started: false,
                synthetic_steps: 0,
            },
        )
    };
    let finished = iterate(cfg, &ctx, &mut lp, &mut trainer, &mut phase, out, opts)?;
    if finished {
        write_eval(cfg, &ctx, &lp, &trainer, &phase, out)?;
    }
    // the envs are gone (nothing is in play since the last checkpoint): the log's last sync
    drop(lp);
    if let Some(r) = recorder {
        r.stop()?;
    }
    Ok(())
}

/// The iterations of one invocation, each followed by its metrics row, the buffer's sync and a
/// checkpoint: the synthetic phase, then sim-to-real with `cfg.real_budget`. Returns whether the
/// run is finished (false: stopped by `opts.stop_after`).
#[allow(clippy::too_many_arguments)]
fn iterate(
    cfg: &ExperimentConfig,
    ctx: &SeedContext<'_>,
    lp: &mut SyntheticLoop,
    trainer: &mut Trainer,
    phase: &mut Phase,
    out: &Path,
    opts: TrainOptions,
) -> Result<bool> {
    let per_iter = (ctx.steps_per_iteration().round() as u64).max(1);
    let s2r_iters = cfg.real_budget.div_ceil(per_iter) as usize;
    let mut run = Checkpointed::open(
        out,
        out.join("checkpoint.bin"),
        trainer,
        cfg.run.iterations + s2r_iters,
        opts.quiet,
        opts.stop_after,
    )?;
    // the synthetic phase
    while trainer.counters().iteration < cfg.run.iterations && !phase.s2r_started {
        if run.stopped() {
            run.finish();
            return Ok(false);
        }
        let m = lp.step(trainer)?;
        phase.synthetic_steps = trainer.counters().env_steps;
        commit(&mut run, ctx, lp, trainer, phase, &m)?;
    }
    let stopped = run.stopped();
    if stopped || s2r_iters == 0 {
        run.finish();
        return Ok(!stopped);
    }
    // sim-to-real, the same procedure as `dreamgym run`'s (one round here: see `validate`);
    // resumed inside it, the iterations the checkpoint holds are not redone
    let done = if phase.s2r_started {
        let left = trainer
            .config()
            .iterations
            .saturating_sub(trainer.counters().iteration);
        s2r_iters.saturating_sub(left)
    } else {
        0
    };
    phase.s2r_started = true;
    ctx.record_as("dreamgym_s2r");
    let plan = SimToRealPlan::new(&cfg.run, s2r_iters);
    let s2r = ctx.sim_to_real(trainer, plan, done, true, false, &mut |t, m| {
        commit(&mut run, ctx, lp, t, phase, m)?;
        Ok(if run.stopped() {
            Next::Break(())
        } else {
            Next::Continue(())
        })
    })?;
    run.finish();
    Ok(!s2r.stopped)
}

/// Commits iteration `m` (see [`Checkpointed::commit`]): the buffer as of this iteration (its
/// episodes in play recorded as abandoned) is durable before the checkpoint that names its
/// length.
fn commit(
    run: &mut Checkpointed,
    ctx: &SeedContext<'_>,
    lp: &SyntheticLoop,
    trainer: &Trainer,
    phase: &Phase,
    m: &IterationMetrics,
) -> Result<()> {
    let line = format!(
        "it {:>4} {} success {:.2} return {:.2}",
        m.iteration,
        if phase.s2r_started { "real " } else { "model" },
        m.success,
        m.mean_return
    );
    run.commit(
        trainer,
        m,
        || Ok(loop_state(lp, phase, ctx.sync_recording()?)),
        &line,
    )
}

/// Evaluates the finished learner on held-out real episodes and writes `out/eval.json` (the
/// figures and the curriculum's history), printing the headline.
fn write_eval(
    cfg: &ExperimentConfig,
    ctx: &SeedContext<'_>,
    lp: &SyntheticLoop,
    trainer: &Trainer,
    phase: &Phase,
    out: &Path,
) -> Result<()> {
    let success = ctx.evaluate(trainer)?;
    let offline_steps = ctx.offline_steps();
    let synthetic_steps = phase.synthetic_steps;
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
        "held-out success {success:.3} ({synthetic_steps} synthetic steps, {real_steps} real steps, {offline_steps} offline steps)"
    );
    Ok(())
}
