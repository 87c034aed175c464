//! A durable append-only log of opaque records with a checksum per record.
//!
//! Layout (documented in `docs/formats.md`): a 12-byte header `DGBUFLOG` + version (u32 LE), then
//! frames `[len: u32 LE][crc32: u32 LE][payload: len bytes]`. Payloads are never empty.
//!
//! **Fsync policy** ([`FsyncPolicy`]): appends are buffered in memory and written with one
//! `write` + `fdatasync` per batch. With `Batch { every }` (the default, `every = 4096`) a power
//! loss can lose at most the last `every - 1` appends; [`DurableLog::sync`] makes everything appended
//! so far durable, and dropping the log syncs. `Always` syncs after every append; `Never` leaves
//! syncing to the OS (flushes on drop only).
//!
//! **Exclusive**: an open log holds an advisory lock on its file; a second open fails with
//! [`LogError::Locked`] instead of interleaving writes.
//!
//! **Recovery**: [`DurableLog::open`] returns every complete, checksum-valid record. A torn or
//! corrupted *tail* (incomplete header, payload past end of file, bad checksum on the last frame, or
//! zero-filled bytes) is cut off and described in [`Recovery`]. A bad frame followed by more data is
//! mid-file corruption: open fails with [`LogError::Corrupt`] rather than silently dropping the
//! records after it, unless [`TailRule::CutAtFirstBad`] is asked for.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"DGBUFLOG";
const VERSION: u32 = 1;
/// Size of the file header in bytes.
pub const HEADER_LEN: u64 = 12;
/// Size of a frame header (length + checksum) in bytes.
pub const FRAME_HEADER_LEN: u64 = 8;
/// Largest payload accepted (a larger length field is treated as corruption).
pub const MAX_PAYLOAD: u32 = 64 << 20;

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every append (slow, loses nothing that `append` acknowledged).
    Always,
    /// Buffer appends and `fdatasync` once every `every` records (and on `sync`/drop).
    Batch {
        /// Records per fsync.
        every: usize,
    },
    /// Never fsync explicitly (the OS decides); data is written on `sync` and drop.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Batch { every: 4096 }
    }
}

/// What to do with a bad frame that is not at the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TailRule {
    /// Cut only a torn/corrupted tail; mid-file corruption is an error.
    #[default]
    CutTailOnly,
    /// Cut the log at the first bad frame, whatever follows (a repair).
    CutAtFirstBad,
}

/// Why the tail of a log was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailProblem {
    /// Fewer than 8 bytes of a frame header at the end.
    TornFrameHeader,
    /// The frame's payload runs past the end of the file.
    TornPayload,
    /// The frame's checksum does not match its payload.
    ChecksumMismatch,
    /// A length of 0 or over the maximum.
    BadLength(u32),
    /// The file header itself was incomplete (a crash right after creation).
    TornFileHeader,
    /// A checksum-valid record whose payload the reader could not decode (only a repair cuts
    /// here; a plain open reports it as [`LogError::BadPayload`]).
    Undecodable,
}

/// What [`DurableLog::open`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Complete records recovered.
    pub records: usize,
    /// Bytes of the file that hold them (header included).
    pub valid_bytes: u64,
    /// Bytes cut off the end.
    pub truncated_bytes: u64,
    /// Why bytes were cut, if any were.
    pub problem: Option<TailProblem>,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            None => write!(
                f,
                "recovered {} records ({} bytes), log intact",
                self.records, self.valid_bytes
            ),
            Some(p) => write!(
                f,
                "recovered {} records ({} bytes); cut {} bytes of tail at offset {} ({p:?})",
                self.records, self.valid_bytes, self.truncated_bytes, self.valid_bytes
            ),
        }
    }
}

/// Errors of the durable log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The log file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is not a dreamgym buffer log (or a newer version).
    #[error("{path}: not a dreamgym buffer log: {reason}")]
    NotALog {
        /// The file.
        path: PathBuf,
        /// What was wrong with the header.
        reason: String,
    },
    /// A bad frame in the middle of the file, followed by more data.
    #[error(
        "{path}: corrupted record at byte offset {offset} ({problem:?}) after {records_before} good records, with {bytes_after} more bytes following; refusing to drop them silently (repair with TailRule::CutAtFirstBad / `dreamgym buffer repair`)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Offset of the bad frame.
        offset: u64,
        /// Records before it.
        records_before: usize,
        /// Bytes from the bad frame to the end of the file.
        bytes_after: u64,
        /// What is wrong with the frame.
        problem: TailProblem,
    },
    /// Another open log (in this or another process) holds the file's lock.
    #[error(
        "{path}: the log is open elsewhere (another dreamgym process or buffer holds its lock)"
    )]
    Locked {
        /// The file.
        path: PathBuf,
    },
    /// A record handed to `append` is empty or too large.
    #[error("{path}: record of {len} bytes cannot be logged (must be 1..={MAX_PAYLOAD})")]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The consumer of recovered records rejected one.
    #[error("{path}: record {index} at byte offset {offset}: {message}")]
    BadPayload {
        /// The file.
        path: PathBuf,
        /// 0-based index of the record.
        index: usize,
        /// Offset of its frame.
        offset: u64,
        /// What the consumer said.
        message: String,
    },
}

/// An open append-only log.
pub struct DurableLog {
    file: File,
    path: PathBuf,
    policy: FsyncPolicy,
    pending: Vec<u8>,
    pending_records: usize,
    unsynced_records: usize,
    len: u64,
    records: usize,
}

impl DurableLog {
    /// Open or create the log at `path`, hand every recovered payload to `on_record` in order, cut a
    /// torn tail, and return the log positioned for appending with a report of what was done.
    pub fn open(
        path: &Path,
        policy: FsyncPolicy,
        tail_rule: TailRule,
        mut on_record: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(Self, Recovery), LogError> {
        let io = |source| LogError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let file_len = file.metadata().map_err(io)?.len();
        let mut recovery = Recovery::default();
        if file_len < HEADER_LEN {
            let mut head = vec![0u8; file_len as usize];
            file.read_exact(&mut head).map_err(io)?;
            let expected = header_bytes();
            if head[..] != expected[..head.len()] {
                return Err(LogError::NotALog {
                    path: path.to_path_buf(),
                    reason: format!("{file_len}-byte file does not start with the log header"),
                });
            }
            if file_len > 0 {
                recovery.problem = Some(TailProblem::TornFileHeader);
                recovery.truncated_bytes = file_len;
            }
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(&expected).map_err(io)?;
            file.sync_all().map_err(io)?;
            sync_parent_dir(path);
            recovery.valid_bytes = HEADER_LEN;
        } else {
            let mut head = [0u8; HEADER_LEN as usize];
            file.read_exact(&mut head).map_err(io)?;
            if &head[..8] != MAGIC {
                return Err(LogError::NotALog {
                    path: path.to_path_buf(),
                    reason: "bad magic bytes".into(),
                });
            }
            let version = u32::from_le_bytes(head[8..12].try_into().unwrap());
            if version != VERSION {
                return Err(LogError::NotALog {
                    path: path.to_path_buf(),
                    reason: format!("log version {version}, this build reads version {VERSION}"),
                });
            }
            recovery = scan(&mut file, path, file_len, tail_rule, &mut on_record)?;
            if recovery.truncated_bytes > 0 {
                file.set_len(recovery.valid_bytes).map_err(io)?;
                file.sync_all().map_err(io)?;
                tracing::warn!("{}: {}", path.display(), recovery);
            }
        }
        file.seek(SeekFrom::Start(recovery.valid_bytes))
            .map_err(io)?;
        Ok((
            DurableLog {
                file,
                path: path.to_path_buf(),
                policy,
                pending: Vec::with_capacity(1 << 20),
                pending_records: 0,
                unsynced_records: 0,
                len: recovery.valid_bytes,
                records: recovery.records,
            },
            recovery,
        ))
    }

    /// Append one record (buffered according to the fsync policy).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), LogError> {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD as usize {
            return Err(LogError::BadRecord {
                path: self.path.clone(),
                len: payload.len(),
            });
        }
        let crc = crc32fast::hash(payload);
        self.pending
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(&crc.to_le_bytes());
        self.pending.extend_from_slice(payload);
        self.pending_records += 1;
        self.records += 1;
        match self.policy {
            FsyncPolicy::Always => self.sync(),
            FsyncPolicy::Batch { every }
                if self.pending_records + self.unsynced_records >= every.max(1) =>
            {
                self.sync()
            }
            _ if self.pending.len() >= 8 << 20 => self.write_pending(),
            _ => Ok(()),
        }
    }

    fn write_pending(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.pending)
            .map_err(|source| LogError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.len += self.pending.len() as u64;
        self.unsynced_records += self.pending_records;
        self.pending.clear();
        self.pending_records = 0;
        Ok(())
    }

    /// Write buffered records and, unless the policy is `Never`, fdatasync them.
    pub fn sync(&mut self) -> Result<(), LogError> {
        self.write_pending()?;
        if self.policy != FsyncPolicy::Never && self.unsynced_records > 0 {
            self.file.sync_data().map_err(|source| LogError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        self.unsynced_records = 0;
        Ok(())
    }

    /// Number of records in the log (including buffered ones).
    pub fn records(&self) -> usize {
        self.records
    }

    /// Bytes written to the file (excluding buffered records).
    pub fn written_bytes(&self) -> u64 {
        self.len
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Atomically replace the log at `path` with one holding exactly `payloads` (temp file + rename).
    pub fn rewrite<'a>(
        path: &Path,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), LogError> {
        let tmp = path.with_extension("compact.tmp");
        {
            let _ = std::fs::remove_file(&tmp);
            let (mut log, _) =
                DurableLog::open(&tmp, FsyncPolicy::Never, TailRule::CutTailOnly, |_| Ok(()))?;
            for p in payloads {
                log.append(p)?;
            }
            log.write_pending()?;
            log.file.sync_all().map_err(|source| LogError::Io {
                path: tmp.clone(),
                source,
            })?;
        }
        std::fs::rename(&tmp, path).map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        sync_parent_dir(path);
        Ok(())
    }
}

impl Drop for DurableLog {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!("failed to sync buffer log on close: {e}");
        }
    }
}

fn header_bytes() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

fn sync_parent_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Walk the frames after the header; stop at the first bad one and decide whether it is a tail.
fn scan(
    file: &mut File,
    path: &Path,
    file_len: u64,
    tail_rule: TailRule,
    on_record: &mut impl FnMut(&[u8]) -> Result<(), String>,
) -> Result<Recovery, LogError> {
    let io = |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &mut *file);
    let mut offset = HEADER_LEN;
    let mut records = 0usize;
    let mut payload = Vec::new();
    let problem = loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break None;
        }
        if remaining < FRAME_HEADER_LEN {
            break Some(TailProblem::TornFrameHeader);
        }
        let mut fh = [0u8; FRAME_HEADER_LEN as usize];
        reader.read_exact(&mut fh).map_err(io)?;
        let len = u32::from_le_bytes(fh[..4].try_into().unwrap());
        let crc = u32::from_le_bytes(fh[4..].try_into().unwrap());
        if len == 0 || len > MAX_PAYLOAD {
            break Some(TailProblem::BadLength(len));
        }
        if remaining - FRAME_HEADER_LEN < len as u64 {
            break Some(TailProblem::TornPayload);
        }
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload).map_err(io)?;
        if crc32fast::hash(&payload) != crc {
            break Some(TailProblem::ChecksumMismatch);
        }
        if let Err(message) = on_record(&payload) {
            // a repair cuts here like at any bad frame; otherwise the reader must say why
            if tail_rule == TailRule::CutAtFirstBad {
                tracing::warn!(
                    "{}: record {records} at offset {offset} cannot be decoded ({message}); cut by the repair",
                    path.display()
                );
                break Some(TailProblem::Undecodable);
            }
            return Err(LogError::BadPayload {
                path: path.to_path_buf(),
                index: records,
                offset,
                message,
            });
        }
        records += 1;
        offset += FRAME_HEADER_LEN + len as u64;
    };
    let Some(problem) = problem else {
        return Ok(Recovery {
            records,
            valid_bytes: offset,
            truncated_bytes: 0,
            problem: None,
        });
    };
    let bytes_after = file_len - offset;
    let is_tail = match problem {
        TailProblem::TornFrameHeader => true,
        // a payload that runs past the end is a torn append only if no valid frame follows the
        // damaged header: a flipped bit in a length field in the middle of the log looks the
        // same, and cutting there would drop every committed record after it without a word
        TailProblem::TornPayload => !valid_frame_follows(file, path, offset, file_len)?,
        TailProblem::ChecksumMismatch => {
            // The bad frame is the last one when it ends exactly at the end of the file.
            let mut fh = [0u8; 4];
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            file.read_exact(&mut fh).map_err(io)?;
            let ends_the_file = offset + FRAME_HEADER_LEN + u32::from_le_bytes(fh) as u64
                == file_len
                || rest_is_zero(file, path, offset, file_len)?;
            ends_the_file && !valid_frame_follows(file, path, offset, file_len)?
        }
        _ => rest_is_zero(file, path, offset, file_len)?,
    };
    if !is_tail && tail_rule == TailRule::CutTailOnly {
        return Err(LogError::Corrupt {
            path: path.to_path_buf(),
            offset,
            records_before: records,
            bytes_after,
            problem,
        });
    }
    Ok(Recovery {
        records,
        valid_bytes: offset,
        truncated_bytes: bytes_after,
        problem: Some(problem),
    })
}

/// Whether a complete, checksum-valid frame starts anywhere after the frame header at `from`.
/// Only the stretch where the next frame can start is read: a real frame header follows a
/// damaged one within one payload (at most [`MAX_PAYLOAD`] bytes).
fn valid_frame_follows(file: &mut File, path: &Path, from: u64, to: u64) -> Result<bool, LogError> {
    let io = |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let start = from + 1;
    if start >= to {
        return Ok(false);
    }
    let window = (to - start).min(2 * (FRAME_HEADER_LEN + MAX_PAYLOAD as u64));
    let mut buf = vec![0u8; window as usize];
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    file.read_exact(&mut buf).map_err(io)?;
    let fh = FRAME_HEADER_LEN as usize;
    for p in 0..buf.len().saturating_sub(fh) {
        let len = u32::from_le_bytes(buf[p..p + 4].try_into().unwrap());
        if len == 0 || len > MAX_PAYLOAD || p + fh + len as usize > buf.len() {
            continue;
        }
        let crc = u32::from_le_bytes(buf[p + 4..p + fh].try_into().unwrap());
        if crc32fast::hash(&buf[p + fh..p + fh + len as usize]) == crc {
            return Ok(true);
        }
    }
    Ok(false)
}

fn rest_is_zero(file: &mut File, path: &Path, from: u64, to: u64) -> Result<bool, LogError> {
    let io = |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    };
    file.seek(SeekFrom::Start(from)).map_err(io)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut left = to - from;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        file.read_exact(&mut buf[..n]).map_err(io)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // 300 cases unless PROPTEST_CASES asks for more (scripts/fuzz.sh)
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
        ))]
        /// A bit flipped anywhere in any frame header of a committed log: every record is either
        /// recovered or the damage is reported — a cut is only ever the damaged last frame.
        #[test]
        fn frame_header_flips_are_never_cut_silently(frame in 0usize..600, bit in 0usize..64) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("flip.dglog");
            let records: Vec<Vec<u8>> = (0..600)
                .map(|i| format!("{{\"record\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 37)).into_bytes())
                .collect();
            let ends = write_log(&path, &records);
            let start = if frame == 0 { HEADER_LEN } else { ends[frame - 1] };
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[(start + bit as u64 / 8) as usize] ^= 1 << (bit % 8);
            std::fs::write(&path, &bytes).unwrap();
            match DurableLog::open(&path, FsyncPolicy::Never, TailRule::CutTailOnly, |_| Ok(())) {
                Ok((_, rec)) => prop_assert!(
                    rec.records == records.len()
                        || (frame == records.len() - 1 && rec.records == frame && rec.problem.is_some()),
                    "frame {frame} bit {bit}: {rec}"
                ),
                Err(LogError::Corrupt { records_before, .. }) => {
                    prop_assert_eq!(records_before, frame)
                }
                Err(e) => prop_assert!(false, "frame {frame} bit {bit}: {e}"),
            }
        }
    }

    fn write_log(path: &Path, records: &[Vec<u8>]) -> Vec<u64> {
        let _ = std::fs::remove_file(path);
        let (mut log, rec) =
            DurableLog::open(path, FsyncPolicy::Never, TailRule::CutTailOnly, |_| Ok(())).unwrap();
        assert_eq!(rec.records, 0);
        let mut ends = vec![];
        let mut end = HEADER_LEN;
        for r in records {
            log.append(r).unwrap();
            end += FRAME_HEADER_LEN + r.len() as u64;
            ends.push(end);
        }
        drop(log);
        ends
    }

    fn read_all(path: &Path) -> Result<(Vec<Vec<u8>>, Recovery), LogError> {
        let mut got = vec![];
        let (_log, rec) = DurableLog::open(path, FsyncPolicy::Never, TailRule::CutTailOnly, |p| {
            got.push(p.to_vec());
            Ok(())
        })?;
        Ok((got, rec))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Cutting the log at every byte offset recovers exactly the records that were complete.
        #[test]
        fn cut_at_every_offset_recovers_complete_records(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..8)
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            let ends = write_log(&path, &records);
            let full = std::fs::read(&path).unwrap();
            for cut in 0..=full.len() {
                std::fs::write(&path, &full[..cut]).unwrap();
                let (got, rec) = read_all(&path).unwrap();
                let complete = ends.iter().filter(|&&e| e as usize <= cut).count();
                prop_assert_eq!(&got[..], &records[..complete]);
                prop_assert_eq!(rec.records, complete);
                let valid = if complete == 0 { HEADER_LEN } else { ends[complete - 1] };
                prop_assert_eq!(rec.valid_bytes, valid);
                prop_assert_eq!(rec.truncated_bytes, (cut as u64).saturating_sub(valid).max(if cut < HEADER_LEN as usize { cut as u64 } else { 0 }));
                // The file was cut to the valid prefix and can be appended to again.
                prop_assert_eq!(std::fs::metadata(&path).unwrap().len(), valid);
                let (again, rec2) = read_all(&path).unwrap();
                prop_assert_eq!(again.len(), complete);
                prop_assert!(rec2.problem.is_none());
            }
        }

        /// Flipping any byte of the last record's frame is detected and only that record is lost.
        #[test]
        fn corrupt_last_record_is_cut(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..6),
            pos in any::<prop::sample::Index>(), flip in 1u8..=255,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("log");
            let ends = write_log(&path, &records);
            let mut full = std::fs::read(&path).unwrap();
            let start = if ends.len() > 1 { ends[ends.len() - 2] } else { HEADER_LEN } as usize;
            let i = start + pos.index(full.len() - start);
            full[i] ^= flip;
            std::fs::write(&path, &full).unwrap();
            match read_all(&path) {
                Ok((got, rec)) => {
                    // A flipped length byte may still make the frame look torn; either way only the tail goes.
                    prop_assert_eq!(&got[..], &records[..records.len() - 1]);
                    prop_assert!(rec.problem.is_some());
                }
                Err(LogError::Corrupt { .. }) => {
                    // A flipped length that points inside the file leaves "more data" after the frame.
                    prop_assert!(i < start + 4);
                }
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
    }

    #[test]
    fn mid_file_corruption_is_an_error_not_a_silent_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let recs: Vec<Vec<u8>> = (0..5).map(|i| vec![i as u8 + 1; 20]).collect();
        let ends = write_log(&path, &recs);
        let mut full = std::fs::read(&path).unwrap();
        full[ends[1] as usize + 10] ^= 0xff; // payload of record 2
        std::fs::write(&path, &full).unwrap();
        let err = read_all(&path).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::Corrupt {
                    records_before: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), full, "nothing was cut");
        // An explicit repair cuts at the bad frame.
        let (log, rec) =
            DurableLog::open(&path, FsyncPolicy::Never, TailRule::CutAtFirstBad, |_| {
                Ok(())
            })
            .unwrap();
        assert_eq!(rec.records, 2);
        assert_eq!(log.records(), 2);
    }

    #[test]
    fn zero_filled_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let recs = vec![b"abc".to_vec(), b"defg".to_vec()];
        write_log(&path, &recs);
        let mut full = std::fs::read(&path).unwrap();
        full.extend(std::iter::repeat_n(0u8, 100));
        std::fs::write(&path, &full).unwrap();
        let (got, rec) = read_all(&path).unwrap();
        assert_eq!(got, recs);
        assert_eq!(rec.truncated_bytes, 100);
    }

    #[test]
    fn a_log_cannot_be_opened_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let first =
            DurableLog::open(&path, FsyncPolicy::Never, TailRule::CutTailOnly, |_| Ok(())).unwrap();
        assert!(matches!(read_all(&path), Err(LogError::Locked { .. })));
        drop(first);
        assert!(read_all(&path).is_ok());
    }

    #[test]
    fn foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"hello world, not a log").unwrap();
        assert!(matches!(read_all(&path), Err(LogError::NotALog { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world, not a log");
    }

    #[test]
    fn batch_policy_persists_after_sync_and_rewrite_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut log, _) = DurableLog::open(
            &path,
            FsyncPolicy::Batch { every: 3 },
            TailRule::CutTailOnly,
            |_| Ok(()),
        )
        .unwrap();
        for i in 0..7u8 {
            log.append(&[i + 1; 5]).unwrap();
        }
        // Six records were synced by the batch rule, the seventh is still buffered.
        assert_eq!(log.written_bytes(), HEADER_LEN + 6 * 13);
        log.sync().unwrap();
        assert_eq!(log.written_bytes(), HEADER_LEN + 7 * 13);
        drop(log);
        let (got, _) = read_all(&path).unwrap();
        assert_eq!(got.len(), 7);
        DurableLog::rewrite(&path, got[4..].iter().map(|v| v.as_slice())).unwrap();
        let (got2, _) = read_all(&path).unwrap();
        assert_eq!(got2, got[4..].to_vec());
    }
}
