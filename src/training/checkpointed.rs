//! The checkpointed iteration: what `dreamgym policy train` and `dreamgym train` both do after
//! each iteration, in one place: the metrics row, then whatever the driver must make durable
//! (the buffer), then the checkpoint naming it, then the progress line. A run killed anywhere
//! resumes from its last checkpoint and redoes at most one iteration.

use anyhow::Result;
use dreamgym_policy::{IterationMetrics, MetricsLog, Trainer};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

/// The iterations of one invocation of a resumable training command (see the module docs).
pub struct Checkpointed {
    log: MetricsLog,
    ckpt: PathBuf,
    bar: ProgressBar,
    stop_after: Option<usize>,
    done_here: usize,
}

impl Checkpointed {
    /// Opens `out`'s metrics log (rows past `trainer`'s checkpointed iteration are dropped, to
    /// be redone) and a progress bar of `total` iterations (hidden when `quiet`), writing the
    /// checkpoint to `ckpt`; `stop_after` stops this invocation after that many iterations.
    pub fn open(
        out: &Path,
        ckpt: PathBuf,
        trainer: &Trainer,
        total: usize,
        quiet: bool,
        stop_after: Option<usize>,
    ) -> Result<Self> {
        let log = MetricsLog::open(out, trainer.counters().iteration)?;
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            let pb = ProgressBar::new(total as u64);
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} it  {msg}",
                )
                .expect("valid template"),
            );
            pb
        };
        bar.set_position(trainer.counters().iteration as u64);
        Ok(Self {
            log,
            ckpt,
            bar,
            stop_after,
            done_here: 0,
        })
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.ckpt
    }

    /// Whether this invocation has done the iterations it was allowed (`--stop-after`).
    pub fn stopped(&self) -> bool {
        self.stop_after.is_some_and(|n| self.done_here >= n)
    }

    /// Records iteration `m` of `trainer`: its metrics row first (a kill after it leaves a row
    /// past the checkpoint, which resuming drops and redoes, never a checkpoint without its
    /// row), then `durable` (what the driver makes durable before the checkpoint, returning the
    /// driver's state to save with it), then the checkpoint, then `line` on the console.
    pub fn commit(
        &mut self,
        trainer: &Trainer,
        m: &IterationMetrics,
        durable: impl FnOnce() -> Result<serde_json::Value>,
        line: &str,
    ) -> Result<()> {
        self.log.append(m)?;
        let extra = durable()?;
        trainer.save_with_extra(&self.ckpt, extra)?;
        self.bar.suspend(|| tracing::info!("{line}"));
        self.bar.set_message(format!("success {:.2}", m.success));
        self.bar.inc(1);
        self.done_here += 1;
        Ok(())
    }

    /// Clears the progress bar.
    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
