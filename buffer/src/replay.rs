//! The replay buffer: real and synthetic transitions in memory, optionally durable on disk, with
//! uniform / provenance-mixed sampling and top-k retrieval of similar transitions.
//!
//! **Eviction rule**: the buffer holds at most `capacity` records. Real records are never evicted
//! and always admitted (the offline seed data may exceed the capacity on its own). When the buffer is
//! full, the oldest *synthetic* record is evicted to make room; a synthetic record that finds no
//! synthetic record to evict is refused with [`BufferError::Full`].
//!
//! **Durability**: a buffer opened with [`ReplayBuffer::open`] appends every admitted record to a
//! [`DurableLog`] before it becomes visible. Evictions are not logged; the capacity is (an entry
//! `{"capacity":N}` when a log is created and whenever it changes), so replaying the log through
//! the same eviction rule reproduces the same live set. [`ReplayBuffer::compact`] rewrites the log
//! with only the live records.

use crate::embed::{Embedder, HashedNgramEmbedder, transition_text};
use crate::index::{ApproxIndex, ApproxParams, ExactIndex, Hit};
use crate::jsonl::{self, JsonlError, JsonlWriter};
use crate::log::{DurableLog, FsyncPolicy, LogError, Recovery, TailRule};
use crate::records::{Outcome, Provenance, Step, Task, Trajectory};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

/// The episode a transition belongs to (shared by all its steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeMeta {
    /// Buffer-assigned episode number.
    pub id: u64,
    /// The task of the episode.
    pub task: Task,
    /// Environment id.
    pub env_id: String,
    /// Reset seed.
    pub seed: u64,
    /// Behaviour policy name.
    #[serde(default)]
    pub policy: String,
    /// Provenance of the episode.
    pub provenance: Provenance,
    /// How the episode ended.
    pub outcome: Outcome,
    /// Free-form facts about the episode that are not part of the trajectory: who played it
    /// and how it ended where that is not a step's flag (e.g. `dreamgym serve` records
    /// `session`, `episode_id` and `ended` = `done` / `truncated` / `abandoned` / `shutdown`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// One stored transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BufferRecord {
    /// Its episode.
    pub episode: Arc<EpisodeMeta>,
    /// Index of the step within the episode.
    pub t: u32,
    /// The transition itself.
    pub step: Step,
}

impl EpisodeMeta {
    /// The episode numbered `id` made of trajectory `t`, with `tags`.
    pub fn of(id: u64, t: &Trajectory, tags: BTreeMap<String, String>) -> Self {
        Self {
            id,
            task: t.task.clone(),
            env_id: t.env_id.clone(),
            seed: t.seed,
            policy: t.policy.clone(),
            provenance: t.provenance,
            outcome: t.outcome,
            tags,
        }
    }
}

/// A trajectory with a reward that is not a finite number could be written but never read back,
/// and one without a step would be counted and lost: every writer of the log refuses them whole.
pub(crate) fn refuse_non_finite(t: &Trajectory) -> Result<(), BufferError> {
    if t.steps.is_empty() {
        return Err(BufferError::NoSteps {
            task: t.task.id.clone(),
        });
    }
    match t.non_finite() {
        Some((field, value)) => Err(BufferError::NonFinite {
            task: t.task.id.clone(),
            field,
            value,
        }),
        None => Ok(()),
    }
}

impl BufferRecord {
    /// Provenance of the step.
    pub fn provenance(&self) -> Provenance {
        self.step.provenance
    }
}

/// How [`ReplayBuffer::open_with`] treats the capacity of an existing log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityOnOpen {
    /// Apply the configured capacity (logging the change).
    FromConfig,
    /// Keep the capacity the log records.
    AsLogged,
}

/// Log entry recording a capacity (replayed in order, so evictions replay exactly).
pub(crate) fn capacity_entry(capacity: usize) -> Vec<u8> {
    format!("{{\"capacity\":{capacity}}}").into_bytes()
}

pub(crate) fn parse_capacity_entry(payload: &[u8]) -> Option<usize> {
    let rest = payload
        .strip_prefix(b"{\"capacity\":")?
        .strip_suffix(b"}")?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// Buffer settings.
#[derive(Debug, Clone, Copy)]
pub struct BufferConfig {
    /// Maximum number of live records (real records may exceed it; see the module docs).
    pub capacity: usize,
    /// Dimension of the default hashed embedder.
    pub embed_dim: usize,
    /// When the durable log fsyncs.
    pub fsync: FsyncPolicy,
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            capacity: 1_000_000,
            embed_dim: 128,
            fsync: FsyncPolicy::default(),
        }
    }
}

/// Errors of the replay buffer.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    /// The durable log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Reading or writing JSONL failed.
    #[error(transparent)]
    Jsonl(#[from] JsonlError),
    /// A synthetic record found the buffer full of real records.
    #[error("buffer full: {capacity} records, none synthetic to evict; synthetic record refused")]
    Full {
        /// The capacity.
        capacity: usize,
    },
    /// An import stopped at a bad line or a refused trajectory; the trajectories before it were
    /// committed (the log is append-only), and the error says how many.
    #[error(
        "{cause} (import stopped there; the {trajectories} trajectories ({steps} steps) before it were committed to the buffer)"
    )]
    ImportStopped {
        /// Trajectories committed before the failure.
        trajectories: usize,
        /// Their steps.
        steps: usize,
        /// What stopped the import.
        cause: Box<BufferError>,
    },
    /// A record holds a number that is not finite (it could be written but never read back).
    #[error("task {task}: {field} is {value}, not a finite number; record refused")]
    NonFinite {
        /// The task id of the record.
        task: String,
        /// The field.
        field: String,
        /// The value.
        value: f32,
    },
    /// A trajectory without a step: a buffer keeps transitions, so it would be counted and lost.
    #[error("task {task}: the trajectory has no steps; a buffer keeps transitions, refused")]
    NoSteps {
        /// The task id of the trajectory.
        task: String,
    },
}

/// Counts describing the buffer's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BufferStats {
    /// Live records (transitions).
    pub records: usize,
    /// Live real records.
    pub real: usize,
    /// Live synthetic records.
    pub synthetic: usize,
    /// Distinct episodes with at least one live record.
    pub episodes: usize,
    /// Distinct task ids with at least one live record.
    pub tasks: usize,
    /// Distinct environments.
    pub envs: usize,
    /// Live steps that ended an episode successfully (done with reward > 0).
    pub successful_episodes: usize,
    /// Live records whose reward the data did not state (imported without rewards): their
    /// episodes are not counted as successful, whatever their outcome says.
    pub unknown_reward: usize,
    /// Records evicted since the buffer was opened (replay included).
    pub evicted: usize,
    /// Configured capacity.
    pub capacity: usize,
}

/// The replay buffer.
pub struct ReplayBuffer {
    config: BufferConfig,
    embedder: Box<dyn Embedder>,
    records: HashMap<u64, BufferRecord>,
    live: Vec<u64>,
    live_pos: HashMap<u64, usize>,
    real_live: Vec<u64>,
    synthetic_fifo: VecDeque<u64>,
    index: ExactIndex,
    approx: Option<ApproxIndex>,
    /// Records added since the approximate index was built (searched exactly beside it).
    fresh: ExactIndex,
    log: Option<DurableLog>,
    next_id: u64,
    next_episode: u64,
    evicted: usize,
}

impl ReplayBuffer {
    /// An in-memory buffer with the default hashed embedder.
    pub fn new(config: BufferConfig) -> Self {
        Self::with_embedder(config, Box::new(HashedNgramEmbedder::new(config.embed_dim)))
    }

    /// An in-memory buffer with a custom embedder.
    pub fn with_embedder(config: BufferConfig, embedder: Box<dyn Embedder>) -> Self {
        let dim = embedder.dim();
        Self {
            config,
            embedder,
            records: HashMap::new(),
            live: Vec::new(),
            live_pos: HashMap::new(),
            real_live: Vec::new(),
            synthetic_fifo: VecDeque::new(),
            index: ExactIndex::new(dim),
            approx: None,
            fresh: ExactIndex::new(dim),
            log: None,
            next_id: 0,
            next_episode: 0,
            evicted: 0,
        }
    }

    /// Open (or create) a durable buffer at `path`: replays the log, cuts a torn tail, and reports
    /// what recovery did. `config.capacity` applies from now on (a change is logged, and a smaller
    /// capacity evicts synthetic records).
    pub fn open(path: &Path, config: BufferConfig) -> Result<(Self, Recovery), BufferError> {
        Self::open_with(
            path,
            config,
            TailRule::CutTailOnly,
            CapacityOnOpen::FromConfig,
        )
    }

    /// Open a durable buffer with the capacity its log records (`config.capacity` only serves a
    /// new log): for inspecting a buffer without changing it.
    pub fn open_as_logged(
        path: &Path,
        config: BufferConfig,
    ) -> Result<(Self, Recovery), BufferError> {
        Self::open_with(
            path,
            config,
            TailRule::CutTailOnly,
            CapacityOnOpen::AsLogged,
        )
    }

    /// Like [`open`](Self::open) with an explicit rule for bad frames and for the capacity.
    pub fn open_with(
        path: &Path,
        config: BufferConfig,
        rule: TailRule,
        capacity: CapacityOnOpen,
    ) -> Result<(Self, Recovery), BufferError> {
        let mut buf = Self::new(config);
        let mut logged_capacity = None;
        let (log, recovery) = DurableLog::open(path, config.fsync, rule, |payload| {
            if let Some(n) = parse_capacity_entry(payload) {
                logged_capacity = Some(n);
                buf.apply_capacity(n);
                return Ok(());
            }
            let rec: BufferRecord =
                serde_json::from_slice(payload).map_err(|e| format!("not a buffer record: {e}"))?;
            buf.insert(rec).map(|_| ()).map_err(|e| e.to_string())
        })?;
        buf.log = Some(log);
        match (capacity, logged_capacity) {
            (CapacityOnOpen::AsLogged, Some(_)) => {}
            (_, Some(n)) if n == config.capacity => {}
            _ => {
                buf.set_capacity(config.capacity)?;
            }
        }
        Ok((buf, recovery))
    }

    /// Change the capacity (logged in a durable buffer); a smaller one evicts the oldest synthetic
    /// records. Returns how many were evicted.
    pub fn set_capacity(&mut self, capacity: usize) -> Result<usize, BufferError> {
        if let Some(log) = &mut self.log {
            log.append(&capacity_entry(capacity))?;
        }
        Ok(self.apply_capacity(capacity))
    }

    fn apply_capacity(&mut self, capacity: usize) -> usize {
        self.config.capacity = capacity;
        let mut n = 0;
        while self.live.len() > capacity {
            let Some(old) = self.synthetic_fifo.pop_front() else {
                break;
            };
            self.remove_live(old);
            self.evicted += 1;
            n += 1;
        }
        n
    }

    /// The buffer's settings.
    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    /// The embedder used for retrieval.
    pub fn embedder(&self) -> &dyn Embedder {
        self.embedder.as_ref()
    }

    /// Number of live records.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether the buffer holds no records.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// A live record by id.
    pub fn get(&self, id: u64) -> Option<&BufferRecord> {
        self.records.get(&id)
    }

    /// All live records in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &BufferRecord)> {
        let mut ids: Vec<u64> = self.live.clone();
        ids.sort_unstable();
        ids.into_iter().map(move |id| (id, &self.records[&id]))
    }

    /// Append every step of a trajectory (as one episode); returns the ids of the records.
    /// All or nothing: a synthetic trajectory that does not fit is refused before any step is added.
    pub fn push_trajectory(&mut self, t: &Trajectory) -> Result<Vec<u64>, BufferError> {
        self.push_trajectory_tagged(t, BTreeMap::new())
    }

    /// [`Self::push_trajectory`] with the episode's [`EpisodeMeta::tags`].
    pub fn push_trajectory_tagged(
        &mut self,
        t: &Trajectory,
        tags: BTreeMap<String, String>,
    ) -> Result<Vec<u64>, BufferError> {
        refuse_non_finite(t)?;
        let synthetic = t
            .steps
            .iter()
            .filter(|s| s.provenance == Provenance::Synthetic)
            .count();
        let room = self.config.capacity.saturating_sub(self.live.len()) + self.synthetic_fifo.len();
        if synthetic > room {
            return Err(BufferError::Full {
                capacity: self.config.capacity,
            });
        }
        let episode = Arc::new(EpisodeMeta::of(self.next_episode, t, tags));
        let records: Vec<BufferRecord> = t
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| BufferRecord {
                episode: episode.clone(),
                t: i as u32,
                step: step.clone(),
            })
            .collect();
        // the episode reaches the log as one unit: after any crash it is there whole or not at all
        if let Some(log) = &mut self.log {
            let payloads: Vec<Vec<u8>> = records
                .iter()
                .map(|r| serde_json::to_vec(r).expect("buffer records always serialise"))
                .collect();
            log.append_unit(payloads.iter().map(Vec::as_slice))?;
        }
        records.into_iter().map(|r| self.insert(r)).collect()
    }

    /// Append one record: logged first (when durable), then made visible.
    pub fn push(&mut self, rec: BufferRecord) -> Result<u64, BufferError> {
        if !rec.step.reward.is_finite() || !rec.episode.outcome.total_reward.is_finite() {
            return Err(BufferError::NonFinite {
                task: rec.episode.task.id.clone(),
                field: "reward".into(),
                value: if rec.step.reward.is_finite() {
                    rec.episode.outcome.total_reward
                } else {
                    rec.step.reward
                },
            });
        }
        self.check_room(rec.provenance())?;
        if let Some(log) = &mut self.log {
            let payload = serde_json::to_vec(&rec).expect("buffer records always serialise");
            log.append(&payload)?;
        }
        self.insert(rec)
    }

    fn check_room(&self, p: Provenance) -> Result<(), BufferError> {
        if p == Provenance::Synthetic
            && self.live.len() >= self.config.capacity
            && self.synthetic_fifo.is_empty()
        {
            return Err(BufferError::Full {
                capacity: self.config.capacity,
            });
        }
        Ok(())
    }

    fn insert(&mut self, rec: BufferRecord) -> Result<u64, BufferError> {
        self.check_room(rec.provenance())?;
        while self.live.len() >= self.config.capacity {
            let Some(old) = self.synthetic_fifo.pop_front() else {
                break;
            };
            self.remove_live(old);
            self.evicted += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.next_episode = self.next_episode.max(rec.episode.id + 1);
        let mut v = vec![0.0; self.embedder.dim()];
        self.embedder.embed_into(
            &transition_text(&rec.step.state.lines, &rec.step.action),
            &mut v,
        );
        self.index.add(id, &v);
        if self.approx.is_some() {
            self.fresh.add(id, &v);
        }
        match rec.provenance() {
            Provenance::Real => self.real_live.push(id),
            Provenance::Synthetic => self.synthetic_fifo.push_back(id),
        }
        self.live_pos.insert(id, self.live.len());
        self.live.push(id);
        self.records.insert(id, rec);
        Ok(id)
    }

    fn remove_live(&mut self, id: u64) {
        self.records.remove(&id);
        self.index.remove(id);
        self.fresh.remove(id);
        if let Some(p) = self.live_pos.remove(&id) {
            self.live.swap_remove(p);
            if let Some(&moved) = self.live.get(p) {
                self.live_pos.insert(moved, p);
            }
        }
    }

    /// Make every appended record durable now (no-op for an in-memory buffer).
    pub fn sync(&mut self) -> Result<(), BufferError> {
        if let Some(log) = &mut self.log {
            log.sync()?;
        }
        Ok(())
    }

    /// Rewrite the durable log with only the live records (atomic: temp file + rename).
    pub fn compact(&mut self) -> Result<(), BufferError> {
        let Some(log) = self.log.take() else {
            return Ok(());
        };
        let path = log.path().to_path_buf();
        drop(log);
        let mut payloads: Vec<Vec<u8>> = vec![capacity_entry(self.config.capacity)];
        payloads.extend(
            self.iter()
                .map(|(_, r)| serde_json::to_vec(r).expect("buffer records always serialise")),
        );
        DurableLog::rewrite(&path, payloads.iter().map(|p| p.as_slice()))?;
        let (log, _) =
            DurableLog::open(&path, self.config.fsync, TailRule::CutTailOnly, |_| Ok(()))?;
        self.log = Some(log);
        Ok(())
    }

    /// Repair the buffer log at `path` in place ([`DurableLog::repair`]): damaged stretches are
    /// skipped and the records after them kept; an episode the damage broke, or a record that is
    /// not a buffer entry, is dropped whole. The report counts both.
    pub fn repair(path: &Path) -> Result<crate::log::RepairReport, BufferError> {
        Ok(DurableLog::repair(path, |payload| {
            parse_capacity_entry(payload).is_some()
                || serde_json::from_slice::<BufferRecord>(payload).is_ok()
        })?)
    }

    /// `n` records drawn uniformly with replacement.
    pub fn sample<'a>(&'a self, n: usize, rng: &mut impl rand::Rng) -> Vec<&'a BufferRecord> {
        if self.live.is_empty() {
            return vec![];
        }
        (0..n)
            .map(|_| &self.records[&self.live[rng.random_range(0..self.live.len())]])
            .collect()
    }

    /// `n` records with a share `real_fraction` drawn from real records and the rest from synthetic
    /// ones (each uniformly, with replacement); falls back to the other kind when one is empty.
    pub fn sample_mix<'a>(
        &'a self,
        n: usize,
        real_fraction: f64,
        rng: &mut impl rand::Rng,
    ) -> Vec<&'a BufferRecord> {
        let n_real = ((n as f64) * real_fraction.clamp(0.0, 1.0)).round() as usize;
        let (real, synth) = (&self.real_live, &self.synthetic_fifo);
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let want_real = i < n_real;
            let id = match (want_real, real.is_empty(), synth.is_empty()) {
                (_, true, true) => return vec![],
                (true, false, _) | (false, false, true) => real[rng.random_range(0..real.len())],
                _ => synth[rng.random_range(0..synth.len())],
            };
            out.push(&self.records[&id]);
        }
        out
    }

    /// The `k` transitions most similar to (`state_lines`, `action`), exact search.
    pub fn retrieve(
        &self,
        state_lines: &[String],
        action: &str,
        k: usize,
    ) -> Vec<(Hit, &BufferRecord)> {
        let q = self.embedder.embed(&transition_text(state_lines, action));
        self.retrieve_vec(&q, k)
    }

    /// Exact top-k for a query vector.
    pub fn retrieve_vec(&self, query: &[f32], k: usize) -> Vec<(Hit, &BufferRecord)> {
        self.index
            .search(query, k)
            .into_iter()
            .map(|h| (h, &self.records[&h.id]))
            .collect()
    }

    /// Build (or rebuild) the approximate index over the live records.
    pub fn build_approx_index(&mut self, params: ApproxParams) {
        self.approx = Some(ApproxIndex::build(
            self.index.dim(),
            self.index.iter(),
            params,
        ));
    }

    /// Set the approximate index's search candidate list size (recall against speed).
    pub fn set_approx_ef(&mut self, ef: usize) {
        if let Some(a) = &mut self.approx {
            a.set_ef_search(ef);
        }
    }

    /// Approximate top-k (exact search when no approximate index was built). Records evicted since
    /// the build are skipped; records added since the build are searched exactly and merged in, so
    /// the index never hides new experience (rebuild when many have accumulated).
    pub fn retrieve_approx(&self, query: &[f32], k: usize) -> Vec<(Hit, &BufferRecord)> {
        let Some(approx) = &self.approx else {
            return self.retrieve_vec(query, k);
        };
        let mut hits = approx.search_filtered(query, k, |id| self.records.contains_key(&id));
        hits.extend(self.fresh.search(query, k));
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        hits.truncate(k);
        hits.into_iter()
            .map(|h| (h, &self.records[&h.id]))
            .collect()
    }

    /// Records added since the approximate index was built.
    pub fn unindexed(&self) -> usize {
        self.fresh.len()
    }

    /// Counts of the buffer's contents.
    pub fn stats(&self) -> BufferStats {
        let mut episodes = HashMap::new();
        let mut tasks = std::collections::HashSet::new();
        let mut envs = std::collections::HashSet::new();
        let mut unknown_reward = 0;
        for id in &self.live {
            let r = &self.records[id];
            unknown_reward += !r.step.reward_known as usize;
            let success = r.episode.outcome.success && r.step.reward_known;
            let e = episodes.entry(r.episode.id).or_insert(success);
            *e &= success;
            tasks.insert(r.episode.task.id.as_str());
            envs.insert(r.episode.env_id.as_str());
        }
        BufferStats {
            records: self.live.len(),
            real: self.real_live.len(),
            synthetic: self.synthetic_fifo.len(),
            episodes: episodes.len(),
            tasks: tasks.len(),
            envs: envs.len(),
            successful_episodes: episodes.values().filter(|&&s| s).count(),
            unknown_reward,
            evicted: self.evicted,
            capacity: self.config.capacity,
        }
    }

    /// Import every trajectory of a JSONL file; returns (trajectories, steps) imported. Stops at the
    /// first bad line or refused trajectory (the trajectories before it stay imported).
    pub fn import_jsonl(&mut self, path: &Path) -> Result<(usize, usize), BufferError> {
        let (mut trajectories, mut steps) = (0, 0);
        let mut failure: Option<BufferError> = None;
        let res = jsonl::for_each_in_file(path, |line, t| {
            if failure.is_some() {
                return Ok(());
            }
            match self.push_trajectory(&t) {
                Ok(ids) => {
                    trajectories += 1;
                    steps += ids.len();
                }
                // a refused trajectory is named by its line
                Err(e) => {
                    failure = Some(BufferError::Jsonl(JsonlError::BadLine {
                        path: path.to_path_buf(),
                        line,
                        column: 1,
                        message: e.to_string(),
                    }))
                }
            }
            Ok(())
        });
        // what came before the failure is committed: the error says how much
        let stopped = |e: BufferError| BufferError::ImportStopped {
            trajectories,
            steps,
            cause: Box::new(e),
        };
        res.map_err(|e| stopped(e.into()))?;
        if let Some(e) = failure {
            return Err(stopped(e));
        }
        Ok((trajectories, steps))
    }
    /// The live records as trajectories (grouped by episode, steps in order). An episode that
    /// lost steps (to eviction, or a crash while it was being appended) comes back with the
    /// steps that remain and `success: false`: a part of an episode is not a success.
    pub fn trajectories(&self) -> Vec<Trajectory> {
        let mut by_episode: BTreeMap<u64, Vec<&BufferRecord>> = BTreeMap::new();
        for id in &self.live {
            let r = &self.records[id];
            by_episode.entry(r.episode.id).or_default().push(r);
        }
        by_episode
            .into_values()
            .map(|mut recs| {
                recs.sort_by_key(|r| r.t);
                let ep = &recs[0].episode;
                let steps: Vec<Step> = recs.iter().map(|r| r.step.clone()).collect();
                let outcome = if steps.len() == ep.outcome.length as usize {
                    ep.outcome
                } else {
                    Trajectory::outcome_from_steps(&steps, false)
                };
                Trajectory {
                    task: ep.task.clone(),
                    env_id: ep.env_id.clone(),
                    seed: ep.seed,
                    provenance: ep.provenance,
                    policy: ep.policy.clone(),
                    steps,
                    outcome,
                }
            })
            .collect()
    }

    /// Export the live records as trajectories ([`Self::trajectories`]) to JSONL.
    pub fn export_jsonl(&self, path: &Path) -> Result<usize, BufferError> {
        let mut w = JsonlWriter::create(path)?;
        for t in self.trajectories() {
            w.write(&t)?;
        }
        let n = w.written();
        w.finish()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Observation, TaskOrigin};
    use rand::SeedableRng;

    fn traj(seed: u64, n: usize, prov: Provenance) -> Trajectory {
        let steps: Vec<Step> = (0..n)
            .map(|i| {
                let obs = |j: usize| Observation {
                    lines: vec![format!(
                        "[room{j}] room: you are in room {j} of episode {seed}"
                    )],
                    instruction: "walk".into(),
                    admissible: vec!["go north".into()],
                    feedback: String::new(),
                };
                Step {
                    state: obs(i),
                    action: format!("go north {i}"),
                    reward: if i + 1 == n { 1.0 } else { 0.0 },
                    next_state: obs(i + 1),
                    done: i + 1 == n,
                    truncated: false,
                    reasoning: None,
                    provenance: prov,
                    reward_known: true,
                }
            })
            .collect();
        Trajectory {
            task: Task {
                id: format!("task{seed}"),
                instruction: "walk".into(),
                params: Default::default(),
                difficulty: 1,
                origin: TaskOrigin::Seed,
            },
            env_id: "test".into(),
            seed,
            provenance: prov,
            policy: "expert".into(),
            outcome: Trajectory::outcome_from_steps(&steps, true),
            steps,
        }
    }

    fn cfg(capacity: usize) -> BufferConfig {
        BufferConfig {
            capacity,
            embed_dim: 32,
            fsync: FsyncPolicy::Never,
        }
    }

    #[test]
    fn eviction_never_touches_real_records() {
        let mut b = ReplayBuffer::new(cfg(10));
        b.push_trajectory(&traj(1, 6, Provenance::Real)).unwrap();
        b.push_trajectory(&traj(2, 4, Provenance::Synthetic))
            .unwrap();
        assert_eq!(b.len(), 10);
        b.push_trajectory(&traj(3, 3, Provenance::Synthetic))
            .unwrap();
        let s = b.stats();
        assert_eq!((s.records, s.real, s.synthetic, s.evicted), (10, 6, 4, 3));
        // the oldest synthetic records went first
        assert!(b.iter().all(|(_, r)| r.episode.seed != 2 || r.t >= 3));
        // real records are admitted beyond capacity; then synthetic ones are refused
        b.push_trajectory(&traj(4, 8, Provenance::Real)).unwrap();
        assert_eq!(b.stats().real, 14);
        assert_eq!(b.stats().synthetic, 0);
        let err = b
            .push_trajectory(&traj(5, 1, Provenance::Synthetic))
            .unwrap_err();
        assert!(matches!(err, BufferError::Full { capacity: 10 }));
        assert_eq!(b.len(), 14, "nothing was added");
    }

    #[test]
    fn a_synthetic_trajectory_that_does_not_fit_is_refused_whole() {
        let mut b = ReplayBuffer::new(cfg(10));
        b.push_trajectory(&traj(1, 8, Provenance::Real)).unwrap();
        b.push_trajectory(&traj(2, 1, Provenance::Synthetic))
            .unwrap();
        // room: 1 free slot + 1 evictable synthetic record = 2 < 3
        assert!(
            b.push_trajectory(&traj(3, 3, Provenance::Synthetic))
                .is_err()
        );
        assert_eq!(b.stats().synthetic, 1);
        assert!(b.iter().all(|(_, r)| r.episode.seed != 3));
        b.push_trajectory(&traj(4, 2, Provenance::Synthetic))
            .unwrap();
        assert_eq!((b.len(), b.stats().evicted), (10, 1));
    }

    #[test]
    fn retrieval_finds_the_same_transition_first() {
        let mut b = ReplayBuffer::new(cfg(1000));
        for s in 0..20 {
            b.push_trajectory(&traj(s, 5, Provenance::Real)).unwrap();
        }
        let target = b.get(37).unwrap().clone();
        let hits = b.retrieve(&target.step.state.lines, &target.step.action, 5);
        assert_eq!(hits.len(), 5);
        assert_eq!(hits[0].1, &target);
        assert!(hits.windows(2).all(|w| w[0].0.score >= w[1].0.score));
        b.build_approx_index(ApproxParams::default());
        let q = b.embedder().embed(&transition_text(
            &target.step.state.lines,
            &target.step.action,
        ));
        assert_eq!(b.retrieve_approx(&q, 3)[0].1, &target);
        // a transition added after the build is found too
        let mut t = traj(99, 1, Provenance::Synthetic);
        t.steps[0].action = "unlock the treasure chest".into();
        t.steps[0].state.lines = vec!["[chest] object: a treasure chest".into()];
        b.push_trajectory(&t).unwrap();
        assert_eq!(b.unindexed(), 1);
        let q = b.embedder().embed(&transition_text(
            &t.steps[0].state.lines,
            &t.steps[0].action,
        ));
        let got = b.retrieve_approx(&q, 3);
        assert_eq!(got[0].1.step, t.steps[0]);
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn sample_mix_respects_the_share() {
        let mut b = ReplayBuffer::new(cfg(1000));
        b.push_trajectory(&traj(1, 50, Provenance::Real)).unwrap();
        b.push_trajectory(&traj(2, 50, Provenance::Synthetic))
            .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let s = b.sample_mix(100, 0.3, &mut rng);
        assert_eq!(
            s.iter()
                .filter(|r| r.provenance() == Provenance::Real)
                .count(),
            30
        );
        assert_eq!(b.sample(7, &mut rng).len(), 7);
        let mut rng2 = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let a: Vec<_> = b.sample_mix(100, 0.3, &mut rng2);
        assert_eq!(a, s, "same seed, same sample");
    }

    #[test]
    fn durable_buffer_recovers_the_same_live_set_and_round_trips_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buf.dglog");
        {
            let (mut b, rec) = ReplayBuffer::open(&path, cfg(12)).unwrap();
            assert_eq!(rec.records, 0);
            b.push_trajectory(&traj(1, 5, Provenance::Real)).unwrap();
            b.push_trajectory(&traj(2, 5, Provenance::Synthetic))
                .unwrap();
            b.push_trajectory(&traj(3, 5, Provenance::Synthetic))
                .unwrap();
        }
        // opened as logged with another capacity: the logged 12 still rules the replay
        let (b, rec) = ReplayBuffer::open_as_logged(&path, cfg(1000)).unwrap();
        assert_eq!(rec.records, 16, "15 records and the capacity entry");
        assert_eq!((b.len(), b.config().capacity), (12, 12));
        drop(b);
        let (mut b, rec) = ReplayBuffer::open(&path, cfg(12)).unwrap();
        assert_eq!(rec.records, 16);
        let s = b.stats();
        assert_eq!((s.records, s.real, s.synthetic, s.evicted), (12, 5, 7, 3));
        b.compact().unwrap();
        drop(b);
        let (b, rec) = ReplayBuffer::open(&path, cfg(12)).unwrap();
        assert_eq!(rec.records, 13);
        assert_eq!(b.stats().evicted, 0);
        let out = dir.path().join("out.jsonl");
        assert_eq!(b.export_jsonl(&out).unwrap(), 3);
        let mut b2 = ReplayBuffer::new(cfg(100));
        assert_eq!(b2.import_jsonl(&out).unwrap(), (3, 12));
        assert_eq!(b2.stats().records, 12);
        let back = jsonl::read_file(&out).unwrap();
        assert_eq!(back[0], traj(1, 5, Provenance::Real));
    }

    #[test]
    fn shrinking_the_capacity_is_logged_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buf.dglog");
        {
            let (mut b, _) = ReplayBuffer::open(&path, cfg(100)).unwrap();
            b.push_trajectory(&traj(1, 5, Provenance::Real)).unwrap();
            b.push_trajectory(&traj(2, 10, Provenance::Synthetic))
                .unwrap();
        }
        {
            let (b, _) = ReplayBuffer::open(&path, cfg(8)).unwrap();
            assert_eq!((b.len(), b.stats().synthetic), (8, 3));
        }
        // growing it again does not bring evicted records back
        let (b, _) = ReplayBuffer::open(&path, cfg(100)).unwrap();
        assert_eq!((b.len(), b.stats().synthetic, b.stats().evicted), (8, 3, 7));
        drop(b);
        let (b, _) = ReplayBuffer::open_as_logged(&path, cfg(5)).unwrap();
        assert_eq!((b.len(), b.config().capacity), (8, 100));
    }

    #[test]
    fn torn_tail_of_buffer_log_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buf.dglog");
        {
            let (mut b, _) = ReplayBuffer::open(&path, cfg(100)).unwrap();
            b.push_trajectory(&traj(1, 2, Provenance::Real)).unwrap();
            b.push_trajectory(&traj(2, 4, Provenance::Real)).unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 7).unwrap();
        let (b, rec) = ReplayBuffer::open(&path, cfg(100)).unwrap();
        // the torn episode goes whole: its 3 complete records with its torn fourth
        assert_eq!(
            (rec.records, rec.unit_records_cut),
            (3, 3),
            "the capacity entry and the first episode; {rec}"
        );
        assert!(rec.truncated_bytes > 0);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn a_trajectory_without_steps_is_refused_at_its_line_not_counted_and_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("buf.dglog");
        let (mut b, _) = ReplayBuffer::open(&path, cfg(100)).unwrap();
        let mut empty = traj(1, 1, Provenance::Real);
        empty.steps.clear();
        empty.outcome = Trajectory::outcome_from_steps(&[], false);
        assert!(matches!(
            b.push_trajectory(&empty),
            Err(BufferError::NoSteps { .. })
        ));
        let jsonl = dir.path().join("t.jsonl");
        let mut w = JsonlWriter::create(&jsonl).unwrap();
        w.write(&traj(2, 2, Provenance::Real)).unwrap();
        w.write(&empty).unwrap();
        w.finish().unwrap();
        let e = b.import_jsonl(&jsonl).unwrap_err().to_string();
        assert!(e.contains("t.jsonl:2") || e.contains("line 2"), "{e}");
        assert!(e.contains("no steps"), "{e}");
        assert!(
            e.contains("the 1 trajectories (2 steps) before it were committed"),
            "{e}"
        );
    }
}
