//! `RecordingEnv`: any env, every episode played in it handed to a [`Recorder`] — how a
//! `dreamgym run` leaves the real and synthetic experience of its training in `buffer.dglog`.
//!
//! **What is recorded**: every step the learner takes, grouped by episode, with the provenance the
//! env's kind says (real for a real env, synthetic for a model env) and the episode's tags (the
//! method and seed of the run, given at construction; `iteration` = the policy iterations that
//! acted, `first-last`; for a model env `model` and the model's per-step `confidence`, space
//! separated; for a branched rollout `joined_after`, the JSON array of the real actions before
//! its first state — `dreamgym buffer replay` counts such episodes under `other_start`, as their
//! first state is no reset's). An episode is written when it ends (done or truncated), when the learner resets in
//! the middle of it, or when the env is dropped (`ended = abandoned`: PPO's envs run across
//! iterations, and the last iteration leaves episodes in play). A step whose prediction the
//! model rejected (`info.rejected`) is not experience and is not recorded (the model env's
//! contract).
//!
//! The wrapper changes nothing the learner sees: the same observations, rewards and flags, in the
//! same order, so a run's figures are the same with and without it.
//!
//! **At a checkpoint** a loop records the episodes still in play in all of its envs as
//! `abandoned` ([`InPlay::abandon_all`]) — PPO resets every env at the start of the next
//! iteration, so they would end that way anyway — and then the log holds exactly the episodes of
//! the iterations done, which is what a resumed run continues from (`dreamgym train`).

use crate::record::recorder::{Recorder, episode_of, recorded_step};
use dreamgym_buffer::{Observation, Provenance, Step, Task};
use dreamgym_sim::{Env, EnvError, StepResult, TaskSpec};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The policy iteration acting now, shared by a loop's envs (set by the loop before each).
pub type IterationClock = Arc<AtomicU64>;

struct Episode {
    task: Task,
    seed: u64,
    state: Observation,
    steps: Vec<Step>,
    confidence: Vec<String>,
    first_iteration: u64,
    /// Where the episode joined a recorded one mid-way (a branched rollout): the actions
    /// before it.
    joined_after: Option<Vec<String>>,
}

/// What a recording env writes with: everything but the inner env, shared with [`InPlay`].
struct Writer {
    recorder: Recorder,
    provenance: Provenance,
    tags: BTreeMap<String, String>,
    clock: IterationClock,
    /// The inner env's id (its `model` tag for synthetic episodes).
    env_id: String,
    episode: Option<Episode>,
}

impl Writer {
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
            tags.insert("model".into(), self.env_id.clone());
            tags.insert("confidence".into(), ep.confidence.join(" "));
        }
        if let Some(actions) = &ep.joined_after {
            // a branch: its first state is a real episode's mid-way state, reached by these
            tags.insert(
                "joined_after".into(),
                serde_json::to_string(actions).unwrap_or_default(),
            );
        }
        self.recorder.record(
            episode_of(
                ep.task,
                self.env_id.clone(),
                ep.seed,
                "learner".into(),
                ep.steps,
            ),
            tags,
        );
    }
}

/// The recording envs of a loop, so that it can record the episodes in play at a checkpoint.
#[derive(Clone, Default)]
pub struct InPlay(Arc<Mutex<Vec<Weak<Mutex<Writer>>>>>);

impl InPlay {
    /// Records every episode in play in the registered envs as `abandoned` (their next reset
    /// starts a new one).
    pub fn abandon_all(&self) {
        let mut envs = self.0.lock().expect("the in-play list is never poisoned");
        envs.retain(|w| w.strong_count() > 0);
        for w in envs.iter().filter_map(Weak::upgrade) {
            w.lock()
                .expect("a writer is never poisoned")
                .finish("abandoned");
        }
    }
}

/// An env whose episodes go to a recorder.
pub struct RecordingEnv {
    inner: Box<dyn Env>,
    writer: Arc<Mutex<Writer>>,
}

impl RecordingEnv {
    /// Wrap `inner` (whose steps have `provenance`); `tags` go on every episode; `in_play`,
    /// when given, is where the loop finds it at a checkpoint.
    pub fn new(
        inner: Box<dyn Env>,
        recorder: Recorder,
        provenance: Provenance,
        tags: BTreeMap<String, String>,
        clock: IterationClock,
        in_play: Option<&InPlay>,
    ) -> Self {
        let writer = Arc::new(Mutex::new(Writer {
            recorder,
            provenance,
            tags,
            clock,
            env_id: inner.id().to_string(),
            episode: None,
        }));
        if let Some(board) = in_play {
            board
                .0
                .lock()
                .expect("the in-play list is never poisoned")
                .push(Arc::downgrade(&writer));
        }
        Self { inner, writer }
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().expect("a writer is never poisoned")
    }
}

impl Env for RecordingEnv {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn reset(&mut self, spec: &TaskSpec, seed: u64) -> Result<Observation, EnvError> {
        self.writer().finish("abandoned");
        let obs = self.inner.reset(spec, seed)?;
        if let Some(task) = self.inner.task() {
            let mut w = self.writer();
            w.episode = Some(Episode {
                task: task.clone(),
                seed,
                state: obs.clone(),
                steps: vec![],
                confidence: vec![],
                first_iteration: w.clock.load(Ordering::Relaxed),
                joined_after: self.inner.joined_after().map(<[String]>::to_vec),
            });
        }
        Ok(obs)
    }

    fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        let r = self.inner.step(action)?;
        let mut w = self.writer();
        let provenance = w.provenance;
        if let Some(ep) = w.episode.as_mut()
            && !r.info.contains_key("rejected")
        {
            let state = std::mem::replace(&mut ep.state, r.observation.clone());
            ep.steps.push(recorded_step(&r, state, action, provenance));
            if let Some(c) = r.info.get("confidence") {
                ep.confidence.push(c.clone());
            }
        }
        if r.done || r.truncated {
            w.finish(if r.done { "done" } else { "truncated" });
        }
        drop(w);
        Ok(r)
    }

    fn task(&self) -> Option<&Task> {
        self.inner.task()
    }

    fn expert_action(&mut self) -> Result<Option<String>, EnvError> {
        self.inner.expert_action()
    }

    fn joined_after(&self) -> Option<&[String]> {
        self.inner.joined_after()
    }
}

impl Drop for RecordingEnv {
    fn drop(&mut self) {
        self.writer().finish("abandoned");
    }
}

#[cfg(test)]
mod tests {
    use super::{IterationClock, RecordingEnv};
    use crate::record::recorder::RecorderThread;
    use dreamgym_buffer::{BufferConfig, Observation, Provenance, ReplayBuffer, Task};
    use dreamgym_sim::{Env, EnvError, StepResult, TaskSpec};
    use std::collections::BTreeMap;

    /// An env whose every episode joined a recorded one after two actions, cut at once.
    struct Joined {
        task: Task,
        joined: Vec<String>,
    }

    impl Env for Joined {
        fn id(&self) -> &str {
            "joined"
        }
        fn reset(&mut self, _: &TaskSpec, _: u64) -> Result<Observation, EnvError> {
            Ok(Observation {
                lines: vec!["mid-way".into()],
                instruction: "go".into(),
                admissible: vec!["on".into()],
                feedback: String::new(),
            })
        }
        fn step(&mut self, _: &str) -> Result<StepResult, EnvError> {
            Ok(StepResult {
                observation: self.reset(&TaskSpec::default(), 0)?,
                reward: 0.0,
                done: false,
                truncated: true,
                success: false,
                info: BTreeMap::new(),
            })
        }
        fn task(&self) -> Option<&Task> {
            Some(&self.task)
        }
        fn joined_after(&self) -> Option<&[String]> {
            Some(&self.joined)
        }
    }

    #[test]
    fn a_branch_is_recorded_with_the_actions_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.dglog");
        let thread = RecorderThread::start(&path, &[]).unwrap();
        let joined = vec!["open the door".to_string(), "go \"north\"".to_string()];
        let mut env = RecordingEnv::new(
            Box::new(Joined {
                task: Task {
                    id: "t".into(),
                    instruction: "go".into(),
                    params: BTreeMap::new(),
                    difficulty: 1,
                    origin: Default::default(),
                },
                joined: joined.clone(),
            }),
            thread.handle(),
            Provenance::Synthetic,
            BTreeMap::new(),
            IterationClock::default(),
            None,
        );
        env.reset(&TaskSpec::default(), 0).unwrap();
        env.step("on").unwrap();
        drop(env);
        thread.stop().unwrap();
        let (buffer, _) = ReplayBuffer::open(&path, BufferConfig::default()).unwrap();
        let (_, rec) = buffer.iter().next().expect("the episode was recorded");
        let tag = rec.episode.tags.get("joined_after").expect("tagged");
        let back: Vec<String> = serde_json::from_str(tag).unwrap();
        assert_eq!(back, joined);
    }
}
