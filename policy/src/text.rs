//! The tokenizer (a vocabulary built from the data, with hashed buckets for unseen words) and the
//! featurizer that turns an observation and its admissible actions into sparse feature vectors.
//!
//! State features are bags of words in four segments (instruction, state lines, last feedback,
//! previous action), each scaled by `1/sqrt(len)`. Action features are the action's bag of words
//! plus a few generic relational features every text environment has: how much of the action
//! appears in the instruction, in the best-matching state line, and how often the action was
//! already taken in this episode.

use dreamgym_buffer::Observation;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A sparse feature vector: (index, value) pairs, indices distinct.
pub type SparseVec = Vec<(u32, f32)>;

/// Number of state segments (instruction, lines, feedback, previous action).
pub const STATE_SEGMENTS: usize = 4;
/// Number of relational features appended to every action's bag of words.
pub const ACTION_EXTRAS: usize = 5;

/// Splits text into lower-case word tokens (letters, digits and `_`). The policy's own rule,
/// apart from the experience model's `dreamgym_sim::model::words`: a checkpoint stores the
/// vocabulary built with it, so changing it would change what old checkpoints mean.
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
}

/// A word vocabulary built from observations, with `oov_buckets` hashed ids for unseen words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    words: Vec<String>,
    oov_buckets: u32,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl Vocab {
    /// Builds a vocabulary from observations: words seen at least `min_count` times, most frequent
    /// first (ties alphabetical), at most `max_words`.
    pub fn build<'a>(
        observations: impl IntoIterator<Item = &'a Observation>,
        max_words: usize,
        min_count: usize,
        oov_buckets: u32,
    ) -> Self {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for obs in observations {
            let texts = std::iter::once(obs.instruction.as_str())
                .chain(obs.lines.iter().map(String::as_str))
                .chain(obs.admissible.iter().map(String::as_str))
                .chain(std::iter::once(obs.feedback.as_str()));
            for text in texts {
                for word in tokenize(text) {
                    *counts.entry(word).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(_, c)| *c >= min_count.max(1))
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(max_words);
        Self::from_words(
            ranked.into_iter().map(|(w, _)| w).collect(),
            oov_buckets.max(1),
        )
    }

    /// A vocabulary over exactly these words (in this order).
    pub fn from_words(words: Vec<String>, oov_buckets: u32) -> Self {
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Self {
            words,
            oov_buckets: oov_buckets.max(1),
            index,
        }
    }

    /// Rebuilds the lookup table after deserialisation.
    pub fn reindex(&mut self) {
        self.index = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
    }

    /// Number of ids (known words plus hashed buckets).
    pub fn size(&self) -> usize {
        self.words.len() + self.oov_buckets as usize
    }

    /// Number of known words.
    pub fn known_words(&self) -> usize {
        self.words.len()
    }

    /// The id of a word: its index, or a hashed bucket when unseen.
    pub fn id(&self, word: &str) -> u32 {
        match self.index.get(word) {
            Some(&i) => i,
            None => self.words.len() as u32 + crc32fast::hash(word.as_bytes()) % self.oov_buckets,
        }
    }

    /// A fingerprint of the words and bucket count: equal fingerprints mean equal feature layouts.
    pub fn fingerprint(&self) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        for w in &self.words {
            hasher.update(w.as_bytes());
            hasher.update(&[0]);
        }
        hasher.update(&self.oov_buckets.to_le_bytes());
        hasher.finalize()
    }
}

/// The sparse features of one decision: the state and each admissible action.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Encoded {
    /// State features (dimension [`Featurizer::state_dim`]).
    pub state: SparseVec,
    /// One feature vector per admissible action (dimension [`Featurizer::action_dim`]).
    pub actions: Vec<SparseVec>,
}

/// What the featurizer needs to know about the episode so far.
#[derive(Debug, Clone, Default)]
pub struct EpisodeMemory {
    taken: HashMap<String, u32>,
    previous: Option<String>,
}

impl EpisodeMemory {
    /// The memory of an episode joined after `actions` (a branched rollout, as if the agent
    /// had taken them), or a fresh one (`None`).
    pub fn joined(actions: Option<&[String]>) -> Self {
        let mut memory = Self::default();
        for a in actions.unwrap_or_default() {
            memory.record(a);
        }
        memory
    }

    /// Records that `action` was taken.
    pub fn record(&mut self, action: &str) {
        *self.taken.entry(action.to_string()).or_default() += 1;
        self.previous = Some(action.to_string());
    }

    /// How often `action` was taken in this episode.
    pub fn times_taken(&self, action: &str) -> u32 {
        self.taken.get(action).copied().unwrap_or(0)
    }

    /// The previous action, if any.
    pub fn previous(&self) -> Option<&str> {
        self.previous.as_deref()
    }
}

/// Turns observations into sparse features over a [`Vocab`].
#[derive(Debug, Clone)]
pub struct Featurizer {
    vocab: Vocab,
}

fn push_bag(out: &mut SparseVec, offset: u32, ids: &[u32]) {
    if ids.is_empty() {
        return;
    }
    let scale = 1.0 / (ids.len() as f32).sqrt();
    let mut acc: BTreeMap<u32, f32> = BTreeMap::new();
    for &id in ids {
        *acc.entry(offset + id).or_default() += scale;
    }
    out.extend(acc);
}

fn overlap(action: &HashSet<&str>, other: &HashSet<&str>) -> f32 {
    if action.is_empty() {
        return 0.0;
    }
    action.iter().filter(|w| other.contains(*w)).count() as f32 / action.len() as f32
}

impl Featurizer {
    /// A featurizer over `vocab`.
    pub fn new(vocab: Vocab) -> Self {
        Self { vocab }
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Dimension of state feature vectors.
    pub fn state_dim(&self) -> usize {
        STATE_SEGMENTS * self.vocab.size()
    }

    /// Dimension of action feature vectors.
    pub fn action_dim(&self) -> usize {
        self.vocab.size() + ACTION_EXTRAS
    }

    fn ids(&self, text: &str) -> Vec<u32> {
        tokenize(text).map(|w| self.vocab.id(&w)).collect()
    }

    /// Encodes the decision in `obs` given the episode so far.
    pub fn encode(&self, obs: &Observation, memory: &EpisodeMemory) -> Encoded {
        let v = self.vocab.size() as u32;
        let mut state = SparseVec::new();
        push_bag(&mut state, 0, &self.ids(&obs.instruction));
        let line_ids: Vec<u32> = obs.lines.iter().flat_map(|l| self.ids(l)).collect();
        push_bag(&mut state, v, &line_ids);
        push_bag(&mut state, 2 * v, &self.ids(&obs.feedback));
        if let Some(prev) = memory.previous() {
            push_bag(&mut state, 3 * v, &self.ids(prev));
        }

        let instruction_words: Vec<String> = tokenize(&obs.instruction).collect();
        let instruction_set: HashSet<&str> = instruction_words.iter().map(String::as_str).collect();
        let line_words: Vec<Vec<String>> =
            obs.lines.iter().map(|l| tokenize(l).collect()).collect();
        let line_sets: Vec<HashSet<&str>> = line_words
            .iter()
            .map(|ws| ws.iter().map(String::as_str).collect())
            .collect();

        let actions = obs
            .admissible
            .iter()
            .map(|action| {
                let words: Vec<String> = tokenize(action).collect();
                let ids: Vec<u32> = words.iter().map(|w| self.vocab.id(w)).collect();
                let mut feats = SparseVec::new();
                push_bag(&mut feats, 0, &ids);
                let set: HashSet<&str> = words.iter().map(String::as_str).collect();
                let taken = memory.times_taken(action);
                let best_line = line_sets
                    .iter()
                    .map(|l| overlap(&set, l))
                    .fold(0.0, f32::max);
                let extras = [
                    overlap(&set, &instruction_set),
                    best_line,
                    (taken.min(3) as f32) / 3.0,
                    if memory.previous() == Some(action.as_str()) {
                        1.0
                    } else {
                        0.0
                    },
                    if taken == 0 { 1.0 } else { 0.0 },
                ];
                for (k, x) in extras.into_iter().enumerate() {
                    if x != 0.0 {
                        feats.push((v + k as u32, x));
                    }
                }
                feats
            })
            .collect();
        Encoded { state, actions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(instruction: &str, lines: &[&str], admissible: &[&str]) -> Observation {
        Observation {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            instruction: instruction.into(),
            admissible: admissible.iter().map(|s| s.to_string()).collect(),
            feedback: String::new(),
        }
    }

    #[test]
    fn vocab_orders_by_frequency_and_hashes_unseen_words() {
        let o = obs(
            "pick up the red ball",
            &["[ball_red] ball: a red ball"],
            &["pick up the red ball"],
        );
        let v = Vocab::build([&o], 100, 1, 8);
        assert_eq!(v.id("ball"), 0, "most frequent word first");
        let unseen = v.id("zebra");
        assert!(unseen as usize >= v.known_words() && (unseen as usize) < v.size());
        assert_eq!(v.id("zebra"), unseen, "hashing is stable");
        let mut round: Vocab = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        round.reindex();
        assert_eq!(round.id("red"), v.id("red"));
        assert_eq!(round.fingerprint(), v.fingerprint());
        let other = Vocab::build([&obs("go", &[], &[])], 100, 1, 8);
        assert_ne!(other.fingerprint(), v.fingerprint());
    }

    #[test]
    fn features_separate_segments_and_mark_repeated_actions() {
        let o = obs(
            "pick up the red ball",
            &["[ball_red] ball: a red ball"],
            &["pick up the red ball", "go to the blue box"],
        );
        let f = Featurizer::new(Vocab::build([&o], 100, 1, 4));
        let mut mem = EpisodeMemory::default();
        let e = f.encode(&o, &mem);
        assert_eq!(e.actions.len(), 2);
        let v = f.vocab().size() as u32;
        assert!(e.state.iter().all(|(i, _)| (*i as usize) < f.state_dim()));
        assert!(e.state.iter().any(|(i, _)| *i < v), "instruction segment");
        assert!(
            e.state.iter().any(|(i, _)| *i >= v && *i < 2 * v),
            "lines segment"
        );
        let extra = |a: &SparseVec, k: u32| {
            a.iter()
                .find(|(i, _)| *i == v + k)
                .map(|(_, x)| *x)
                .unwrap_or(0.0)
        };
        assert_eq!(
            extra(&e.actions[0], 0),
            1.0,
            "all action words in the instruction"
        );
        assert!(extra(&e.actions[1], 0) < 0.5);
        assert_eq!(extra(&e.actions[1], 4), 1.0, "never taken");
        mem.record("go to the blue box");
        let e2 = f.encode(&o, &mem);
        assert_eq!(extra(&e2.actions[1], 3), 1.0, "previous action");
        assert_eq!(extra(&e2.actions[1], 4), 0.0);
        assert!(
            e2.state.iter().any(|(i, _)| *i >= 3 * v),
            "previous-action segment"
        );
    }
}
