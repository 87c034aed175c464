//! `RecordingEnv`: any env, every episode played in it handed to a [`Recorder`] — how a
//! `dreamgym run` leaves the real and synthetic experience of its training in `buffer.dglog`.
//!
//! **What is recorded**: every step the learner takes, grouped by episode, with the provenance the
//! env's kind says (real for a real env, synthetic for a model env) and the episode's tags (the
//! method and seed of the run, given at construction; `iteration` = the policy iterations that
//! acted, `first-last`; for a model env `model` and the model's per-step `confidence`, space
//! separated). An episode is written when it ends (done or truncated), when the learner resets in
//! the middle of it, or when the env is dropped (`ended = abandoned`: PPO's envs run across
//! iterations, and the last iteration leaves episodes in play). A step whose prediction the
//! model rejected (`info.rejected`) is not experience and is not recorded (the model env's
//! contract).
//!
//! The wrapper changes nothing the learner sees: the same observations, rewards and flags, in the
//! same order, so a run's figures are the same with and without it.

use crate::recorder::{Recorder, episode_of, recorded_step};
use dreamgym_buffer::{Observation, Provenance, Step, Task};
use dreamgym_sim::{Env, EnvError, StepResult, TaskSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The policy iteration acting now, shared by a loop's envs (set by the loop before each).
pub type IterationClock = Arc<AtomicU64>;

struct Episode {
    task: Task,
    seed: u64,
    state: Observation,
    steps: Vec<Step>,
    confidence: Vec<String>,
    first_iteration: u64,
}

/// An env whose episodes go to a recorder.
pub struct RecordingEnv {
    inner: Box<dyn Env>,
    recorder: Recorder,
    provenance: Provenance,
    tags: BTreeMap<String, String>,
    clock: IterationClock,
    episode: Option<Episode>,
}

impl RecordingEnv {
    /// Wrap `inner` (whose steps have `provenance`); `tags` go on every episode.
    pub fn new(
        inner: Box<dyn Env>,
        recorder: Recorder,
        provenance: Provenance,
        tags: BTreeMap<String, String>,
        clock: IterationClock,
    ) -> Self {
        Self {
            inner,
            recorder,
            provenance,
            tags,
            clock,
            episode: None,
        }
    }

    fn finish(&mut self, ended: &str) {
        let Some(ep) = self.episode.take() else {
            return;
        };
        if ep.steps.is_empty() {
            return;
        }
        let mut tags = self.tags.clone();
        tags.insert("ended".into(), ended.into());
        tags.insert(
            "iteration".into(),
            format!(
                "{}-{}",
                ep.first_iteration,
                self.clock.load(Ordering::Relaxed)
            ),
        );
        if self.provenance == Provenance::Synthetic {
            tags.insert("model".into(), self.inner.id().to_string());
            tags.insert("confidence".into(), ep.confidence.join(" "));
        }
        let env_id = self.inner.id().to_string();
        self.recorder.record(
            episode_of(ep.task, env_id, ep.seed, "learner".into(), ep.steps),
            tags,
        );
    }
}

impl Env for RecordingEnv {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError> {
        self.finish("abandoned");
        let obs = self.inner.reset(spec, seed)?;
        if let Some(task) = self.inner.task() {
            self.episode = Some(Episode {
                task: task.clone(),
                seed,
                state: obs.clone(),
                steps: vec![],
                confidence: vec![],
                first_iteration: self.clock.load(Ordering::Relaxed),
            });
        }
        Ok(obs)
    }

    fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        let r = self.inner.step(action)?;
        if let Some(ep) = self.episode.as_mut()
            && !r.info.contains_key("rejected")
        {
            let state = std::mem::replace(&mut ep.state, r.observation.clone());
            ep.steps
                .push(recorded_step(&r, state, action, self.provenance));
            if let Some(c) = r.info.get("confidence") {
                ep.confidence.push(c.clone());
            }
        }
        if r.done || r.truncated {
            self.finish(if r.done { "done" } else { "truncated" });
        }
        Ok(r)
    }

    fn task(&self) -> Option<&Task> {
        self.inner.task()
    }

    fn expert_action(&mut self) -> Result<Option<String>, EnvError> {
        self.inner.expert_action()
    }
}

impl Drop for RecordingEnv {
    fn drop(&mut self) {
        self.finish("abandoned");
    }
}
