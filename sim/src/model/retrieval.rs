//! Retrieved experience: the real transitions an experience model is shown while it plays a task
//! instance (DreamGym's top-k retrieval from the replay buffer's real data).
//!
//! **Modes** ([`RetrievalMode`]):
//! * `Off` — nothing (the "without retrieval" ablation);
//! * `Instance` — the real transitions of the same task instance (by task id, at most
//!   [`RETRIEVED`], in data order): what a real episode of this instance saw somewhere is what
//!   the model shows there. An instance without real data gets nothing;
//! * `Similar` — the same instance's transitions first, then those of the most similar *other*
//!   real instances until [`RETRIEVED`] transitions: similarity is the cosine of hashed n-gram
//!   embeddings of the instruction and the first observation's lines (the buffer's embedder), so
//!   an instance never seen still gets the experience of its nearest neighbours.
//!
//! Retrieval is per instance, computed when an episode starts ([`Retrieval::for_instance`]), not
//! per step: the instance decides what is relevant, and a step costs no search.
//!
//! **Scale.** `Similar` compares the query with every real instance while there are fewer than
//! [`APPROX_FROM`] of them; from there on it asks an approximate index (the buffer's HNSW,
//! built one vector after another so that the same data always gives the same neighbours) for
//! the [`APPROX_NEIGHBOURS`] nearest, so an episode start costs about the same at 1M real
//! transitions as at 100k. Its recall against the exact scan is measured in `benches/model.rs`.

use dreamgym_buffer::{
    ApproxIndex, ApproxParams, Embedder, HashedNgramEmbedder, Observation, Step, Trajectory,
};
use std::collections::HashMap;

/// Most real transitions shown to the model for one instance.
pub const RETRIEVED: usize = 64;

/// Real instances from which `Similar` searches an approximate index instead of scanning all.
pub const APPROX_FROM: usize = 4_096;

/// Nearest instances an approximate search returns (each brings its transitions until
/// [`RETRIEVED`]; real episodes average 5-20 steps, so a few neighbours fill it).
pub const APPROX_NEIGHBOURS: usize = 32;

/// The approximate index's shape: fewer links and a shorter build list than the buffer's
/// default, since it is built on one core at the start of every loop.
const APPROX_PARAMS: ApproxParams = ApproxParams {
    max_connections: 16,
    ef_construction: 64,
    ef_search: 64,
};

/// Which real transitions a model is shown (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RetrievalMode {
    /// Nothing.
    Off,
    /// The same instance's real transitions.
    #[default]
    Instance,
    /// The same instance's, then the most similar other instances'.
    Similar,
}

impl std::str::FromStr for RetrievalMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" | "none" => Ok(Self::Off),
            "instance" => Ok(Self::Instance),
            "similar" => Ok(Self::Similar),
            _ => Err(format!(
                "unknown retrieval `{s}`: expected off, instance or similar"
            )),
        }
    }
}

/// Which episodes retrieval may show: real ones only (the default: what a real episode saw is
/// evidence), or the synthetic episodes an experience model played as well (its own earlier
/// predictions, which keep a world consistent across episodes but are no evidence).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Retrievable {
    /// Real episodes (offline data and real interactions).
    #[default]
    Real,
    /// Synthetic episodes only (for measuring what they carry).
    Synthetic,
    /// Both.
    All,
}

impl Retrievable {
    /// Whether an episode of `provenance` is retrievable.
    pub fn admits(self, provenance: dreamgym_buffer::Provenance) -> bool {
        use dreamgym_buffer::Provenance;
        match self {
            Retrievable::Real => provenance == Provenance::Real,
            Retrievable::Synthetic => provenance == Provenance::Synthetic,
            Retrievable::All => true,
        }
    }
}

impl std::str::FromStr for Retrievable {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "real" => Ok(Self::Real),
            "synthetic" => Ok(Self::Synthetic),
            "all" => Ok(Self::All),
            _ => Err(format!(
                "unknown retrievable `{s}`: expected real, synthetic or all"
            )),
        }
    }
}

/// The real data retrieval draws on, indexed once (shared by the envs of a loop).
pub struct Retrieval {
    mode: RetrievalMode,
    by_task: HashMap<String, Vec<Step>>,
    /// Each real instance (task id) with the embedding of its instruction and first lines.
    instances: Vec<(String, Vec<f32>)>,
    /// Over `instances` (ids are positions), from [`APPROX_FROM`] instances on.
    approx: Option<ApproxIndex>,
    embedder: HashedNgramEmbedder,
}

impl Retrieval {
    /// Index `real` trajectories for `mode` (with an approximate index for `Similar` from
    /// [`APPROX_FROM`] instances on).
    pub fn new(real: &[Trajectory], mode: RetrievalMode) -> Self {
        let mut r = Self::exact(real, mode);
        if r.instances.len() >= APPROX_FROM {
            let dim = r.embedder.dim();
            r.approx = Some(ApproxIndex::build_serial(
                dim,
                r.instances
                    .iter()
                    .enumerate()
                    .map(|(i, (_, e))| (i as u64, e.as_slice())),
                APPROX_PARAMS,
            ));
        }
        r
    }

    /// Like [`new`](Self::new), but `Similar` always scans every instance (the reference the
    /// approximate index is measured against).
    pub fn exact(real: &[Trajectory], mode: RetrievalMode) -> Self {
        let mut r = Self {
            mode,
            by_task: HashMap::new(),
            instances: vec![],
            approx: None,
            embedder: HashedNgramEmbedder::default(),
        };
        for t in real {
            r.add(t);
        }
        r
    }

    /// Indexes one more trajectory (a loop adding the synthetic episodes it played, when
    /// they are retrievable): its transitions join its instance's, up to [`RETRIEVED`] in the
    /// order added, and a new instance becomes a neighbour for `Similar` (scanned, beside the
    /// approximate index, which holds the instances it was built with).
    pub fn add(&mut self, t: &Trajectory) {
        if self.mode == RetrievalMode::Off {
            return;
        }
        let steps = self.by_task.entry(t.task.id.clone()).or_insert_with(|| {
            if self.mode == RetrievalMode::Similar
                && let Some(first) = t.steps.first()
            {
                self.instances.push((
                    t.task.id.clone(),
                    self.embedder
                        .embed(&instance_text(&t.task.instruction, &first.state)),
                ));
            }
            vec![]
        });
        let room = RETRIEVED.saturating_sub(steps.len());
        steps.extend(t.steps.iter().take(room).cloned());
    }

    /// Transitions indexed (at most [`RETRIEVED`] per instance).
    pub fn transitions(&self) -> usize {
        self.by_task.values().map(Vec::len).sum()
    }

    /// The mode.
    pub fn mode(&self) -> RetrievalMode {
        self.mode
    }

    /// What the model is shown while playing instance `task_id` (whose instruction and first
    /// observation are `instruction` and `first`).
    pub fn for_instance(&self, task_id: &str, instruction: &str, first: &Observation) -> Vec<Step> {
        let mut out: Vec<Step> = self.by_task.get(task_id).cloned().unwrap_or_default();
        if self.mode != RetrievalMode::Similar || out.len() >= RETRIEVED {
            return out;
        }
        let q = self.embedder.embed(&instance_text(instruction, first));
        // the instances the approximate index holds are searched there; the rest are scanned
        let (mut near, scanned): (Vec<(f32, &str)>, _) = match &self.approx {
            Some(index) => (
                index
                    .search_filtered(&q, APPROX_NEIGHBOURS, |i| {
                        self.instances[i as usize].0 != task_id
                    })
                    .into_iter()
                    .map(|h| (h.score, self.instances[h.id as usize].0.as_str()))
                    .collect(),
                &self.instances[index.len()..],
            ),
            None => (vec![], &self.instances[..]),
        };
        near.extend(
            scanned
                .iter()
                .filter(|(id, _)| id != task_id)
                .map(|(id, e)| {
                    let cosine = q.iter().zip(e).map(|(a, b)| a * b).sum::<f32>();
                    (cosine, id.as_str())
                }),
        );
        // most similar first; ties by id, so the choice does not depend on data order
        near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        for (_, id) in near {
            let room = RETRIEVED - out.len();
            if room == 0 {
                break;
            }
            out.extend(self.by_task[id].iter().take(room).cloned());
        }
        out
    }
}

/// The text an instance is compared by: its instruction and its first observation's lines.
fn instance_text(instruction: &str, first: &Observation) -> String {
    let mut s = instruction.to_string();
    for l in &first.lines {
        s.push('\n');
        s.push_str(l);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use dreamgym_buffer::{Outcome, Provenance, Task};

    fn episode(id: &str, instruction: &str, room: &str, n: usize) -> Trajectory {
        let obs = |i: usize| Observation {
            lines: vec![
                format!("[{room}] room: the {room}"),
                format!("[x{i}] thing: item {i}"),
            ],
            instruction: instruction.into(),
            admissible: vec!["look".into()],
            feedback: String::new(),
        };
        Trajectory {
            task: Task {
                id: id.into(),
                instruction: instruction.into(),
                params: Default::default(),
                difficulty: 1,
                origin: Default::default(),
            },
            env_id: "scenario:x".into(),
            seed: 0,
            provenance: Provenance::Real,
            policy: "expert".into(),
            steps: (0..n)
                .map(|i| Step {
                    state: obs(i),
                    action: format!("look {id}"),
                    reward: 0.0,
                    next_state: obs(i + 1),
                    done: false,
                    truncated: false,
                    reasoning: None,
                    provenance: Provenance::Real,
                    reward_known: true,
                })
                .collect(),
            outcome: Outcome {
                success: false,
                total_reward: 0.0,
                length: n as u32,
                truncated: false,
            },
        }
    }

    #[test]
    fn added_episodes_follow_the_first_ones_and_new_instances_become_neighbours() {
        let real = [episode("w/heat/1", "heat the apple", "kitchen", 40)];
        let mut instance = Retrieval::new(&real, RetrievalMode::Instance);
        instance.add(&episode("w/heat/1", "heat the apple", "kitchen", 40));
        let got = instance.for_instance("w/heat/1", "heat the apple", &real[0].steps[0].state);
        // the first 40 as before, then 24 of the added episode's, up to RETRIEVED
        assert_eq!(got.len(), RETRIEVED);
        assert_eq!(got[..40], real[0].steps[..]);
        assert_eq!(instance.transitions(), RETRIEVED);
        // an instance added later is a neighbour for Similar
        let mut similar = Retrieval::new(&real, RetrievalMode::Similar);
        similar.add(&episode("w/cool/2", "cool the wine", "cellar", 10));
        let cellar = Observation {
            lines: vec!["[cellar] room: the cellar".into()],
            instruction: "cool the wine".into(),
            ..Default::default()
        };
        let got = similar.for_instance("w/cool/9", "cool the wine", &cellar);
        assert!(got[..10].iter().all(|s| s.action == "look w/cool/2"));
        // Off indexes nothing, added or not
        let mut off = Retrieval::new(&real, RetrievalMode::Off);
        off.add(&real[0]);
        assert_eq!(off.transitions(), 0);
    }

    #[test]
    fn from_approx_from_instances_the_index_finds_what_the_scan_finds_every_time() {
        // APPROX_FROM instances of 4 steps each, in rooms named by number: the nearest to a new
        // instance in room 77 are the instances whose room names share its n-grams
        let real: Vec<Trajectory> = (0..APPROX_FROM)
            .map(|i| {
                episode(
                    &format!("w/go/{i}"),
                    "go to the room",
                    &format!("room{i}"),
                    4,
                )
            })
            .collect();
        let new = Observation {
            lines: vec!["[room77] room: the room77".into()],
            instruction: "go to the room".into(),
            ..Default::default()
        };
        let approx = Retrieval::new(&real, RetrievalMode::Similar);
        assert!(
            approx.approx.is_some(),
            "the index is built from APPROX_FROM instances"
        );
        let exact = Retrieval::exact(&real, RetrievalMode::Similar);
        assert!(exact.approx.is_none());
        let got = approx.for_instance("w/go/new", "go to the room", &new);
        let want = exact.for_instance("w/go/new", "go to the room", &new);
        assert_eq!(got.len(), RETRIEVED);
        // the nearest instance (room77 itself) first, as the scan has it
        assert_eq!(got[0].action, "look w/go/77");
        assert_eq!(got[..4], want[..4]);
        let shared = got.iter().filter(|s| want.contains(s)).count();
        assert!(
            shared >= RETRIEVED * 3 / 4,
            "index and scan share {shared} of {RETRIEVED}"
        );
        // built serially: the same data gives the same neighbours
        let again = Retrieval::new(&real, RetrievalMode::Similar);
        assert_eq!(again.for_instance("w/go/new", "go to the room", &new), got);
    }

    #[test]
    fn a_new_instance_gets_its_nearest_neighbours_and_off_gets_nothing() {
        let real = [
            episode("w/heat/1", "heat the apple", "kitchen", 40),
            episode("w/cool/2", "cool the wine", "cellar", 40),
            episode("w/heat/3", "heat the bread", "kitchen", 40),
        ];
        let new = Observation {
            lines: vec!["[kitchen] room: the kitchen".into()],
            instruction: "heat the apple".into(),
            ..Default::default()
        };
        let similar = Retrieval::new(&real, RetrievalMode::Similar);
        let got = similar.for_instance("w/heat/9", "heat the apple", &new);
        assert_eq!(got.len(), RETRIEVED);
        // the most similar instance first, then the next; the cellar one is not needed
        assert!(got[..40].iter().all(|s| s.action == "look w/heat/1"));
        assert!(got[40..].iter().all(|s| s.action == "look w/heat/3"));
        // a seen instance: its own transitions first
        let own = similar.for_instance("w/cool/2", "cool the wine", &real[1].steps[0].state);
        assert!(own[..40].iter().all(|s| s.action == "look w/cool/2"));
        // by instance only: nothing for the new one, its own for a seen one
        let instance = Retrieval::new(&real, RetrievalMode::Instance);
        assert!(
            instance
                .for_instance("w/heat/9", "heat the apple", &new)
                .is_empty()
        );
        assert_eq!(
            instance
                .for_instance("w/cool/2", "cool the wine", &real[1].steps[0].state)
                .len(),
            40
        );
        let off = Retrieval::new(&real, RetrievalMode::Off);
        assert!(
            off.for_instance("w/cool/2", "cool the wine", &real[1].steps[0].state)
                .is_empty()
        );
    }
}
