//! Training in the real env: real-only training and sim-to-real (a learner trained in the
//! model continued on real training instances), with the real episodes recorded.

use crate::record::env::{IterationClock, RecordingEnv};
use crate::record::recorder::Recorder;
use crate::training::context::SeedContext;
use anyhow::Result;
use dreamgym_buffer::Provenance;
use dreamgym_policy::{TaskSampler, Trainer};
use dreamgym_sim::Env;
use std::collections::BTreeMap;

impl SeedContext<'_> {
    /// Prepares `trainer` (trained in the model) for `iterations` of sim-to-real: a fresh
    /// learning-rate schedule over them, peaking at `s2r_lr_scale` x `policy.lr`.
    pub(crate) fn begin_sim_to_real(&self, trainer: &mut Trainer, iterations: usize) {
        trainer.extend(iterations);
        trainer.set_learning_rate(self.policy.lr * self.cfg.s2r_lr_scale);
    }

    /// Trains `trainer` for `iterations` iterations in the real env (training instances; set
    /// its schedule first with `Trainer::extend` or [`Self::begin_sim_to_real`]); returns
    /// (online real steps so far in this call, training success) per iteration. With `capture`,
    /// the episodes played there are handed to it too.
    pub(crate) fn train_real(
        &self,
        trainer: &mut Trainer,
        iterations: usize,
        capture: Option<&Recorder>,
    ) -> Result<Vec<(u64, f32)>> {
        let mut envs: Vec<Box<dyn Env>> = (0..self.policy.num_envs)
            .map(|_| {
                let env = self.recorded(self.factory.open(), Provenance::Real);
                match capture {
                    Some(c) => Box::new(RecordingEnv::new(
                        env,
                        c.clone(),
                        Provenance::Real,
                        BTreeMap::new(),
                        IterationClock::default(),
                        None,
                    )) as Box<dyn Env>,
                    None => env,
                }
            })
            .collect();
        let sampler = TaskSampler::train(self.spec.clone());
        let start_steps = trainer.counters().env_steps;
        let mut rows = vec![];
        let mut steps = start_steps;
        for i in 0..iterations {
            self.tell_recording(trainer);
            let m = trainer.iterate(&mut envs, &sampler)?;
            rows.push((m.env_steps - start_steps, m.success));
            self.progress
                .iteration(i + 1, iterations, m.env_steps - steps);
            steps = m.env_steps;
        }
        Ok(rows)
    }
}
