//! The recorder: one thread that owns a durable buffer log (through a [`BufferAppender`]) and
//! appends every episode handed to it: what `dreamgym serve` serves, what `dreamgym run` plays
//! (see [`crate::record::env`]).
//!
//! **Hand-over**: producers (a server's sessions, a run's envs) send finished episodes with their
//! tags over a bounded channel (a full channel makes the producer wait: back-pressure, never
//! loss).
//!
//! **When it is durable**: the thread appends everything waiting, then syncs the log once (a group
//! commit), then counts the episodes as durable ([`RecorderStats::durable_episodes`], shown by
//! `dreamgym serve`'s `GET /stats`). A `kill -9` loses at most the episodes still in play and those handed over
//! since the last sync; the log's recovery cuts a torn tail, so every record that is there is
//! whole.

use anyhow::{Context, Result};
use dreamgym_buffer::{BufferAppender, FsyncPolicy, Trajectory};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Episodes waiting for the recorder at most (then sessions wait).
const QUEUE: usize = 1024;

/// What the recorder has done so far (read by `GET /stats` and the tests).
#[derive(Debug, Default)]
pub struct RecorderStats {
    /// Episodes appended and synced to disk.
    pub durable_episodes: AtomicU64,
    /// Their transitions.
    pub durable_records: AtomicU64,
    /// Episodes the buffer refused (e.g. a non-finite reward), logged as errors.
    pub refused: AtomicU64,
}

/// The transition a step result completes, as a recorder keeps it: with the provenance of the
/// env that produced it and a model's reasoning trace (`info.reasoning`) where there is one.
pub fn recorded_step(
    r: &dreamgym_sim::StepResult,
    state: dreamgym_buffer::Observation,
    action: &str,
    provenance: dreamgym_buffer::Provenance,
) -> dreamgym_buffer::Step {
    let mut step = r.to_step(state, action.to_string());
    // a model env's reward shaped by an uncertainty penalty: the record keeps the prediction
    if let Some(reward) = r.info.get("model_reward").and_then(|v| v.parse().ok()) {
        step.reward = reward;
    }
    step.provenance = provenance;
    step.reasoning = r.info.get("reasoning").cloned();
    step
}

/// The episode of `steps` (not empty) as a trajectory; success is the last step's
/// ([`dreamgym_buffer::is_success`]).
pub fn episode_of(
    task: dreamgym_buffer::Task,
    env_id: String,
    seed: u64,
    policy: String,
    steps: Vec<dreamgym_buffer::Step>,
) -> Trajectory {
    let success = steps
        .last()
        .is_some_and(|s| dreamgym_buffer::is_success(s.done, s.reward));
    Trajectory {
        outcome: Trajectory::outcome_from_steps(&steps, success),
        provenance: steps.first().map(|s| s.provenance).unwrap_or_default(),
        task,
        env_id,
        seed,
        policy,
        steps,
    }
}

enum Message {
    Episode(Box<Trajectory>, BTreeMap<String, String>),
    /// Reply with the log's length once everything handed over before is written and synced.
    Barrier(SyncSender<std::result::Result<u64, String>>),
    Stop,
}

/// A handle sessions use to hand over finished episodes.
#[derive(Clone)]
pub struct Recorder {
    sink: Sink,
    stats: Arc<RecorderStats>,
}

/// Where a recorder's episodes go.
#[derive(Clone)]
enum Sink {
    /// The recorder thread, which appends them to a log.
    Log(SyncSender<Message>),
    /// A list in memory (tags dropped): what a run keeps to learn from, e.g. the real episodes
    /// of sim-to-real that refit the experience model.
    Memory(Arc<Mutex<Vec<Trajectory>>>),
}

/// The recorder thread; [`RecorderThread::stop`] writes what is waiting, syncs and joins it.
pub struct RecorderThread {
    handle: Recorder,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Recorder {
    /// Hand over a finished episode with its tags (blocks while the queue is full).
    pub fn record(&self, episode: Trajectory, tags: BTreeMap<String, String>) {
        if episode.steps.is_empty() {
            return;
        }
        match &self.sink {
            Sink::Log(tx) => {
                // the thread only ends after `stop`, which comes after every session has ended
                if tx.send(Message::Episode(Box::new(episode), tags)).is_err() {
                    tracing::error!("the recorder has stopped; an episode was not recorded");
                }
            }
            Sink::Memory(list) => list
                .lock()
                .expect("the episode list is never poisoned")
                .push(episode),
        }
    }

    /// A recorder that keeps the episodes in memory; [`Recorder::take`] hands them back.
    pub fn in_memory() -> Self {
        Self {
            sink: Sink::Memory(Default::default()),
            stats: Default::default(),
        }
    }

    /// The episodes an in-memory recorder has kept so far, in the order they ended (and it
    /// starts afresh); a log recorder has none to give.
    pub fn take(&self) -> Vec<Trajectory> {
        match &self.sink {
            Sink::Memory(list) => {
                std::mem::take(&mut *list.lock().expect("the episode list is never poisoned"))
            }
            Sink::Log(_) => vec![],
        }
    }

    /// Waits until every episode handed over before is written and synced; returns the log's
    /// length in bytes then (a record boundary; 0 for an in-memory recorder).
    pub fn barrier(&self) -> Result<u64> {
        let Sink::Log(log) = &self.sink else {
            return Ok(0);
        };
        let (tx, rx) = sync_channel(1);
        log.send(Message::Barrier(tx))
            .map_err(|_| anyhow::anyhow!("the recorder has stopped"))?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("the recorder stopped before the barrier"))?
            .map_err(|e| anyhow::anyhow!("syncing the buffer log failed: {e}"))
    }

    /// The counts so far.
    pub fn stats(&self) -> &RecorderStats {
        &self.stats
    }
}

impl RecorderThread {
    /// Open (or create) the buffer log at `path` and start the thread. `seed`: real trajectories
    /// written first when the log is new (a synthetic env's offline data, so the buffer holds
    /// what the model was fit on beside what was played in it).
    pub fn start(path: &Path, seed: &[Trajectory]) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory of {}", path.display()))?;
        }
        // an appender, not a ReplayBuffer: a server records without end, and a buffer would
        // hold every record (and its embedding) in memory
        let (mut buffer, recovery) = BufferAppender::open(path, FsyncPolicy::default())
            .with_context(|| format!("opening the buffer log {}", path.display()))?;
        if recovery.truncated_bytes > 0 {
            tracing::warn!("{}: {recovery}", path.display());
        }
        if buffer.records() == 0 {
            for t in seed {
                buffer
                    .push_trajectory_tagged(t, BTreeMap::new())
                    .with_context(|| format!("seeding {} with the offline data", path.display()))?;
            }
            buffer.sync()?;
        }
        let (tx, rx) = sync_channel(QUEUE);
        let stats = Arc::new(RecorderStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("dreamgym-recorder".into())
            .spawn(move || write_loop(buffer, &rx, &thread_stats))
            .context("starting the recorder thread")?;
        Ok(Self {
            handle: Recorder {
                sink: Sink::Log(tx),
                stats,
            },
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// A handle for sessions.
    pub fn handle(&self) -> Recorder {
        self.handle.clone()
    }

    /// Write everything handed over so far, sync, and end the thread.
    pub fn stop(mut self) -> Result<()> {
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        if let Some(t) = self.thread.take() {
            if let Sink::Log(tx) = &self.handle.sink {
                let _ = tx.send(Message::Stop);
            }
            t.join()
                .map_err(|_| anyhow::anyhow!("the recorder of {} panicked", self.path.display()))?;
        }
        Ok(())
    }
}

impl Drop for RecorderThread {
    /// A run that fails still leaves what it recorded written and synced.
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            tracing::error!("{e}");
        }
    }
}

fn write_loop(mut buffer: BufferAppender, rx: &Receiver<Message>, stats: &RecorderStats) {
    let mut stop = false;
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let mut batch = vec![first];
        // everything already waiting goes into the same sync (a group commit)
        while let Ok(m) = rx.try_recv() {
            batch.push(m);
        }
        let (mut episodes, mut records) = (0, 0);
        let mut barriers = vec![];
        for m in batch {
            match m {
                Message::Stop => stop = true,
                Message::Barrier(reply) => barriers.push(reply),
                Message::Episode(t, tags) => match buffer.push_trajectory_tagged(&t, tags) {
                    Ok(n) => {
                        episodes += 1;
                        records += n as u64;
                    }
                    Err(e) => {
                        stats.refused.fetch_add(1, Relaxed);
                        tracing::error!("episode of task {} not recorded: {e}", t.task.id);
                    }
                },
            }
        }
        let synced = buffer.sync().map(|()| buffer.synced_bytes());
        match &synced {
            Ok(_) => {
                stats.durable_episodes.fetch_add(episodes, Relaxed);
                stats.durable_records.fetch_add(records, Relaxed);
            }
            Err(e) => tracing::error!("syncing the buffer log failed: {e}"),
        }
        // the length counts this whole batch: everything handed over before the barrier (and
        // whatever other producers handed over just after it)
        for reply in barriers {
            let _ = reply.send(synced.as_ref().map(|b| *b).map_err(|e| e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_step_keeps_the_models_reward_not_the_penalised_one() {
        let result = |info: &[(&str, &str)]| dreamgym_sim::StepResult {
            observation: Default::default(),
            reward: 0.7,
            done: true,
            truncated: false,
            success: true,
            info: info
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let synthetic = dreamgym_buffer::Provenance::Synthetic;
        let shaped = result(&[("uncertainty_penalty", "0.3000"), ("model_reward", "1")]);
        let step = recorded_step(&shaped, Default::default(), "go", synthetic);
        assert_eq!(step.reward, 1.0);
        assert!(dreamgym_buffer::is_success(step.done, step.reward));
        // without a penalty the reward is the step's own
        let plain = recorded_step(&result(&[]), Default::default(), "go", synthetic);
        assert_eq!(plain.reward, 0.7);
    }
}
