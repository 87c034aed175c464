//! Appending episodes to a buffer log without holding them: for long-running producers (a
//! `dreamgym serve` process records every step it serves) whose records would outgrow memory
//! in a [`ReplayBuffer`](crate::ReplayBuffer), which keeps every live record and its embedding.
//!
//! **Same format**: the log holds the same entries a durable `ReplayBuffer` writes (a capacity
//! entry when the log is created, then one [`BufferRecord`] per step), so `ReplayBuffer::open`,
//! `dreamgym buffer stats` and `buffer export` read what an appender wrote, and an appender may
//! continue a log a buffer wrote. Episode ids continue after the highest one in the log.
//!
//! **Opening** streams the log once (checking that every entry is a buffer record, cutting a torn
//! tail as the buffer does) and keeps only counts.

use crate::log::{DurableLog, FsyncPolicy, Recovery, TailRule};
use crate::records::Trajectory;
use crate::replay::{
    BufferConfig, BufferError, EpisodeMeta, capacity_entry, parse_capacity_entry, refuse_non_finite,
};
use std::collections::BTreeMap;
use std::path::Path;

/// An append-only writer of a buffer log.
pub struct BufferAppender {
    log: DurableLog,
    next_episode: u64,
    records: u64,
}

impl BufferAppender {
    /// Open (or create) the log at `path`; `fsync` as for a buffer.
    pub fn open(path: &Path, fsync: FsyncPolicy) -> Result<(Self, Recovery), BufferError> {
        let mut next_episode = 0;
        let mut records = 0;
        let (mut log, recovery) =
            DurableLog::open(path, fsync, TailRule::CutTailOnly, |payload| {
                if parse_capacity_entry(payload).is_some() {
                    return Ok(());
                }
                #[derive(serde::Deserialize)]
                struct EpisodeId {
                    id: u64,
                }
                #[derive(serde::Deserialize)]
                struct RecordHead {
                    episode: EpisodeId,
                }
                let head: RecordHead = serde_json::from_slice(payload)
                    .map_err(|e| format!("not a buffer record: {e}"))?;
                next_episode = next_episode.max(head.episode.id + 1);
                records += 1;
                Ok(())
            })?;
        if log.records() == 0 {
            log.append(&capacity_entry(BufferConfig::default().capacity))?;
        }
        Ok((
            Self {
                log,
                next_episode,
                records,
            },
            recovery,
        ))
    }

    /// Append every step of `t` as one episode with `tags`; returns how many records. A
    /// trajectory with a reward that is not a finite number is refused whole.
    pub fn push_trajectory_tagged(
        &mut self,
        t: &Trajectory,
        tags: BTreeMap<String, String>,
    ) -> Result<usize, BufferError> {
        refuse_non_finite(t)?;
        // each record is `{"episode":META,"t":I,"step":STEP}`, exactly what serialising a
        // `BufferRecord` writes (tested); the episode's part is serialised once, not once per step
        let meta = serde_json::to_vec(&EpisodeMeta::of(self.next_episode, t, tags))
            .expect("episodes always serialise");
        self.next_episode += 1;
        let payloads: Vec<Vec<u8>> = t
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let mut payload = Vec::with_capacity(meta.len() + 4096);
                payload.extend_from_slice(b"{\"episode\":");
                payload.extend_from_slice(&meta);
                payload.extend_from_slice(format!(",\"t\":{i},\"step\":").as_bytes());
                serde_json::to_writer(&mut payload, step).expect("steps always serialise");
                payload.push(b'}');
                payload
            })
            .collect();
        // one unit: a kill at any moment leaves the episode in the log whole or not at all
        self.log.append_unit(payloads.iter().map(Vec::as_slice))?;
        self.records += t.steps.len() as u64;
        Ok(t.steps.len())
    }

    /// Make everything appended durable now.
    pub fn sync(&mut self) -> Result<(), BufferError> {
        Ok(self.log.sync()?)
    }

    /// Bytes of the log file as of the last sync: a frame boundary, so a log cut there opens with
    /// exactly the records appended before it (`dreamgym train` keeps it in each checkpoint).
    pub fn synced_bytes(&self) -> u64 {
        self.log.written_bytes()
    }

    /// Records in the log (recovered plus appended).
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Observation, Outcome, Provenance, Step, Task};
    use crate::replay::{BufferRecord, ReplayBuffer};
    use std::path::Path;
    use std::sync::Arc;

    fn episode(n: usize, reward: f32) -> Trajectory {
        let obs = |i: usize| Observation {
            lines: vec![format!("[r] room: step {i}")],
            instruction: "walk".into(),
            admissible: vec!["go".into()],
            feedback: String::new(),
        };
        let steps: Vec<Step> = (0..n)
            .map(|i| Step {
                state: obs(i),
                action: "go".into(),
                reward: if i + 1 == n { reward } else { 0.0 },
                next_state: obs(i + 1),
                done: i + 1 == n,
                truncated: false,
                reasoning: None,
                provenance: Provenance::Synthetic,
                reward_known: true,
            })
            .collect();
        Trajectory {
            task: Task {
                id: "w/t/1".into(),
                instruction: "walk".into(),
                params: Default::default(),
                difficulty: 1,
                origin: Default::default(),
            },
            env_id: "model:native".into(),
            seed: 3,
            provenance: Provenance::Synthetic,
            policy: "client:x".into(),
            outcome: Outcome {
                success: reward >= 1.0,
                total_reward: reward,
                length: n as u32,
                truncated: false,
            },
            steps,
        }
    }

    #[test]
    fn a_replay_buffer_reads_what_an_appender_wrote_and_ids_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.dglog");
        let tags = |s: &str| BTreeMap::from([("session".to_string(), s.to_string())]);
        {
            let (mut a, _) = BufferAppender::open(&path, FsyncPolicy::default()).unwrap();
            assert_eq!(
                a.push_trajectory_tagged(&episode(3, 1.0), tags("a"))
                    .unwrap(),
                3
            );
            assert_eq!(
                a.push_trajectory_tagged(&episode(2, 0.0), tags("b"))
                    .unwrap(),
                2
            );
            assert!(
                a.push_trajectory_tagged(&episode(2, f32::INFINITY), tags("c"))
                    .is_err()
            );
            a.sync().unwrap();
        }
        let (mut a, rec) = BufferAppender::open(&path, FsyncPolicy::default()).unwrap();
        assert_eq!(
            (rec.records, a.records()),
            (6, 5),
            "a capacity entry and 5 records"
        );
        a.push_trajectory_tagged(&episode(1, 1.0), tags("d"))
            .unwrap();
        drop(a);
        let (buf, _) = ReplayBuffer::open(&path, BufferConfig::default()).unwrap();
        let eps: Vec<(u64, u32, String)> = buf
            .iter()
            .map(|(_, r)| (r.episode.id, r.t, r.episode.tags["session"].clone()))
            .collect();
        assert_eq!(
            eps,
            [
                (0, 0, "a".into()),
                (0, 1, "a".into()),
                (0, 2, "a".into()),
                (1, 0, "b".into()),
                (1, 1, "b".into()),
                (2, 0, "d".into()),
            ]
        );
        assert_eq!(buf.stats().synthetic, 6);
    }

    #[test]
    fn records_are_written_byte_for_byte_as_a_buffer_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes.dglog");
        let t = episode(3, 1.0);
        let tags = BTreeMap::from([("ended".to_string(), "done \"quoted\"".to_string())]);
        {
            let (mut a, _) = BufferAppender::open(&path, FsyncPolicy::default()).unwrap();
            a.push_trajectory_tagged(&t, tags.clone()).unwrap();
        }
        let mut payloads = vec![];
        DurableLog::open(&path, FsyncPolicy::default(), TailRule::CutTailOnly, |p| {
            payloads.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        let meta = Arc::new(EpisodeMeta::of(0, &t, tags));
        for (i, step) in t.steps.iter().enumerate() {
            let rec = BufferRecord {
                episode: meta.clone(),
                t: i as u32,
                step: step.clone(),
            };
            assert_eq!(
                payloads[i + 1],
                serde_json::to_vec(&rec).unwrap(),
                "step {i}"
            );
        }
    }

    #[test]
    fn an_appender_refuses_a_log_of_something_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.dglog");
        {
            let (mut log, _) =
                DurableLog::open(&path, FsyncPolicy::default(), TailRule::CutTailOnly, |_| {
                    Ok(())
                })
                .unwrap();
            log.append(b"{\"hello\": 1}").unwrap();
        }
        assert!(BufferAppender::open(&path, FsyncPolicy::default()).is_err());
    }

    /// The episodes recovered from `bytes` written as a log: (id, steps) of each, checking on
    /// the way that each is whole (steps 0..length in order). Read as `ReplayBuffer::open` reads
    /// (the same log recovery, every record decoded), without building a buffer per cut.
    fn recovered_episodes(path: &Path, bytes: &[u8]) -> Vec<(u64, usize)> {
        std::fs::write(path, bytes).unwrap();
        let mut records: Vec<BufferRecord> = vec![];
        let (_log, rec) =
            DurableLog::open(path, FsyncPolicy::Never, TailRule::CutTailOnly, |payload| {
                if crate::replay::parse_capacity_entry(payload).is_none() {
                    records.push(serde_json::from_slice(payload).map_err(|e| e.to_string())?);
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("a log cut at byte {} must open: {e}", bytes.len()));
        let mut eps: Vec<(u64, usize)> = vec![];
        for r in &records {
            match eps.last_mut() {
                Some((id, n)) if *id == r.episode.id => {
                    assert_eq!(r.t as usize, *n, "cut at {}: {rec}", bytes.len());
                    *n += 1;
                }
                _ => {
                    assert_eq!(
                        r.t,
                        0,
                        "cut at {}: episode starts mid-way; {rec}",
                        bytes.len()
                    );
                    eps.push((r.episode.id, 1));
                }
            }
        }
        for r in &records {
            let whole = eps.iter().find(|(id, _)| *id == r.episode.id).unwrap().1;
            assert_eq!(
                whole,
                r.episode.outcome.length as usize,
                "cut at {}: episode {} is not whole; {rec}",
                bytes.len(),
                r.episode.id
            );
        }
        eps
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(8)
        ))]
        /// A kill at any byte of the log (the file cut there): recovery yields only whole
        /// episodes, and every episode whose bytes were all written before the cut.
        #[test]
        fn a_log_cut_at_any_byte_recovers_whole_episodes_and_every_one_written(
            lengths in proptest::collection::vec(1usize..6, 1..5),
            every in 1usize..10,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cut.dglog");
            // the byte where each episode's last frame ends
            let mut ends = vec![];
            {
                let (mut a, _) =
                    BufferAppender::open(&path, FsyncPolicy::Batch { every }).unwrap();
                a.sync().unwrap();
                for (k, &n) in lengths.iter().enumerate() {
                    a.push_trajectory_tagged(&episode(n, k as f32), BTreeMap::new()).unwrap();
                    a.sync().unwrap();
                    ends.push(a.synced_bytes());
                }
            }
            let full = std::fs::read(&path).unwrap();
            // every cut is opened (and truncated and synced by recovery): in memory where the
            // machine has a tmpfs, so that thousands of fsyncs cost nothing
            let shm = std::path::Path::new("/dev/shm");
            let probe_dir = if shm.is_dir() {
                tempfile::tempdir_in(shm).unwrap()
            } else {
                tempfile::tempdir().unwrap()
            };
            let probe = probe_dir.path().join("probe.dglog");
            for cut in 0..=full.len() {
                let eps = recovered_episodes(&probe, &full[..cut]);
                let written = ends.iter().filter(|&&e| e as usize <= cut).count();
                proptest::prop_assert_eq!(eps.len(), written, "cut at {}", cut);
                for (k, (id, n)) in eps.iter().enumerate() {
                    proptest::prop_assert_eq!((*id, *n), (k as u64, lengths[k]));
                }
            }
        }
    }

    #[test]
    fn an_episode_torn_mid_way_is_cut_whole_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("torn.dglog");
        let first_end = {
            let (mut a, _) = BufferAppender::open(&path, FsyncPolicy::default()).unwrap();
            a.push_trajectory_tagged(&episode(3, 1.0), BTreeMap::new())
                .unwrap();
            a.sync().unwrap();
            let end = a.synced_bytes();
            a.push_trajectory_tagged(&episode(30, 0.0), BTreeMap::new())
                .unwrap();
            end
        };
        let full = std::fs::read(&path).unwrap();
        // the kill lands after 25 of the second episode's 30 frames and part of the 26th
        let mut at = first_end as usize;
        for _ in 0..25 {
            let len =
                u32::from_le_bytes(full[at..at + 4].try_into().unwrap()) & !crate::log::CONTINUES;
            at += 8 + len as usize;
        }
        std::fs::write(&path, &full[..at + 100]).unwrap();
        let (a, rec) = BufferAppender::open(&path, FsyncPolicy::default()).unwrap();
        assert_eq!(a.records(), 3, "{rec}");
        assert_eq!(rec.unit_records_cut, 25, "{rec}");
        assert_eq!(rec.valid_bytes, first_end);
        assert!(
            rec.to_string()
                .contains("25 whole record(s) of the unfinished episode"),
            "{rec}"
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), first_end);
    }
}
