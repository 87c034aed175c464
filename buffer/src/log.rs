//! A durable append-only log of opaque records with a checksum per record.
//!
//! Layout (documented in `docs/formats.md`): a 12-byte header `DGBUFLOG` + version (u32 LE), then
//! frames `[len: u32 LE][crc32: u32 LE][payload: len bytes]`. Payloads are never empty.
//!
//! **Units** (version 2): records appended together with [`DurableLog::append_unit`] (the steps of
//! one episode) reach the log as one unit: every frame of the unit but the last has the top bit of
//! its length field set ([`CONTINUES`]), and its checksum covers that bit too. Recovery hands a
//! unit's records over only once its last frame is read: a unit cut short (a kill in the middle of
//! its write, a torn tail inside it) is cut whole with the tail and counted in
//! [`Recovery::unit_records_cut`]. Version 1 logs (every record its own unit) are read as they are
//! and marked version 2 when opened.
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
const VERSION: u32 = 2;
/// The oldest version read (version 1 has no units: every record is whole on its own).
const OLDEST_VERSION: u32 = 1;
/// Top bit of a frame's length field: more frames of the same unit follow.
pub const CONTINUES: u32 = 1 << 31;
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
    /// Every frame is whole, but the last unit's final frame never came (the writer was killed
    /// between two writes of one unit).
    UnfinishedUnit,
}

impl std::fmt::Display for TailProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TailProblem::TornFrameHeader => f.write_str("an incomplete record header"),
            TailProblem::TornPayload => f.write_str("a record running past the end of the file"),
            TailProblem::ChecksumMismatch => f.write_str("a record whose checksum does not match"),
            TailProblem::BadLength(n) => write!(f, "a record length of {n} bytes"),
            TailProblem::TornFileHeader => f.write_str("an incomplete file header"),
            TailProblem::Undecodable => f.write_str("a record that could not be read"),
            TailProblem::UnfinishedUnit => {
                f.write_str("an episode whose last record was never written")
            }
        }
    }
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
    /// Whole records cut with the tail because their unit (episode) was not finished.
    pub unit_records_cut: usize,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            None => write!(
                f,
                "recovered {} records ({} bytes), log intact",
                self.records, self.valid_bytes
            ),
            Some(p) => {
                write!(
                    f,
                    "recovered {} records ({} bytes); cut {} bytes of tail at offset {} ({p})",
                    self.records, self.valid_bytes, self.truncated_bytes, self.valid_bytes
                )?;
                if self.unit_records_cut > 0 {
                    write!(
                        f,
                        ", with {} whole record(s) of the unfinished episode they began",
                        self.unit_records_cut
                    )?;
                }
                Ok(())
            }
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
        "{path}: corrupted record at byte offset {offset} ({problem}) after {records_before} good records, with {bytes_after} more bytes following; refusing to drop them silently (`dreamgym buffer repair` skips the damage and keeps the rest)"
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
        lock(&file, path)?;
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
            let version = header_version(&head, path)?;
            recovery = scan(
                &mut file,
                path,
                file_len,
                version,
                tail_rule,
                &mut on_record,
            )?;
            if version < VERSION {
                // a version 1 log is a version 2 log without units; what is appended now may
                // carry them
                file.seek(SeekFrom::Start(8)).map_err(io)?;
                file.write_all(&VERSION.to_le_bytes()).map_err(io)?;
                file.sync_data().map_err(io)?;
            }
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

    /// Append one record, a unit of its own (buffered according to the fsync policy).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), LogError> {
        self.append_unit([payload])
    }

    /// Append `payloads` as one unit (see the module doc): recovery gives back all of them or
    /// none. All or nothing here too: a payload of a bad size refuses the whole unit. An empty
    /// unit appends nothing.
    pub fn append_unit<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), LogError> {
        let start = (self.pending.len(), self.pending_records, self.records);
        let mut payloads = payloads.into_iter().peekable();
        while let Some(payload) = payloads.next() {
            if payload.is_empty() || payload.len() > MAX_PAYLOAD as usize {
                self.pending.truncate(start.0);
                self.pending_records = start.1;
                self.records = start.2;
                return Err(LogError::BadRecord {
                    path: self.path.clone(),
                    len: payload.len(),
                });
            }
            let continues = payloads.peek().is_some();
            let len = payload.len() as u32 | if continues { CONTINUES } else { 0 };
            self.pending.extend_from_slice(&len.to_le_bytes());
            self.pending
                .extend_from_slice(&frame_crc(payload, continues).to_le_bytes());
            self.pending.extend_from_slice(payload);
            self.pending_records += 1;
            self.records += 1;
        }
        if self.records == start.2 {
            return Ok(());
        }
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

    /// Atomically replace the log at `path` with one holding exactly `payloads`, each a unit of
    /// its own (temp file + rename).
    pub fn rewrite<'a>(
        path: &Path,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), LogError> {
        Self::rewrite_units(path, payloads.into_iter().map(|p| vec![p]))
    }

    /// Atomically replace the log at `path` with one holding exactly `units` (temp file + rename).
    pub fn rewrite_units<'a>(
        path: &Path,
        units: impl IntoIterator<Item = Vec<&'a [u8]>>,
    ) -> Result<(), LogError> {
        let tmp = path.with_extension("compact.tmp");
        {
            let _ = std::fs::remove_file(&tmp);
            let (mut log, _) =
                DurableLog::open(&tmp, FsyncPolicy::Never, TailRule::CutTailOnly, |_| Ok(()))?;
            for unit in units {
                log.append_unit(unit)?;
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

/// What [`DurableLog::repair`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepairReport {
    /// Records kept.
    pub kept: usize,
    /// Damaged stretches skipped: (byte offset, length) in the file before the repair.
    pub skipped: Vec<(u64, u64)>,
    /// Whole, checksum-valid records dropped with the units (episodes) the damage broke, or
    /// that the reader could not decode.
    pub records_dropped: usize,
}

impl std::fmt::Display for RepairReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.skipped.is_empty() && self.records_dropped == 0 {
            return write!(f, "kept {} records; nothing was damaged", self.kept);
        }
        let bytes: u64 = self.skipped.iter().map(|(_, n)| n).sum();
        write!(
            f,
            "kept {} records; skipped {} damaged stretch(es) ({bytes} bytes",
            self.kept,
            self.skipped.len()
        )?;
        for (i, (at, n)) in self.skipped.iter().enumerate().take(5) {
            write!(f, "{}{n} at offset {at}", if i == 0 { ": " } else { ", " })?;
        }
        if self.skipped.len() > 5 {
            write!(f, ", ...")?;
        }
        write!(
            f,
            "); dropped {} whole record(s) of the episodes the damage broke or that could not be read",
            self.records_dropped
        )
    }
}

impl DurableLog {
    /// Repair the log at `path` in place: keep every checksum-valid record of every unit that is
    /// whole and whose records `readable` accepts, skip damaged stretches by resynchronising at the
    /// next valid frame (rather than cutting everything after the first bad frame), and write the
    /// result atomically (temp file + rename). Records of a unit the damage broke are dropped
    /// with it: the frames before the damage, and after it the frames up to the unit's end
    /// (where the damaged frame's own header could not say whether it ended its unit, the first
    /// unit after the damage is dropped too, to be safe). Everything is counted in the report.
    pub fn repair(
        path: &Path,
        mut readable: impl FnMut(&[u8]) -> bool,
    ) -> Result<RepairReport, LogError> {
        let io = |source| LogError::Io {
            path: path.to_path_buf(),
            source,
        };
        // hold the lock while reading, so that no writer appends meanwhile
        let file = OpenOptions::new().read(true).open(path).map_err(io)?;
        lock(&file, path)?;
        let bytes = std::fs::read(path).map_err(io)?;
        if bytes.len() < HEADER_LEN as usize {
            return Err(LogError::NotALog {
                path: path.to_path_buf(),
                reason: "no log header to repair from".into(),
            });
        }
        let version = header_version(&bytes[..HEADER_LEN as usize], path)?;
        let mut report = RepairReport::default();
        let mut units: Vec<Vec<&[u8]>> = vec![];
        let mut unit: Vec<&[u8]> = vec![];
        // after damage: drop frames up to and including the end of the unit it broke
        let mut dropping = false;
        let mut largest = 0u32;
        let mut pos = HEADER_LEN as usize;
        while pos < bytes.len() {
            match frame_at(&bytes, pos, version) {
                Some((payload, continues)) => {
                    largest = largest.max(payload.len() as u32);
                    pos += FRAME_HEADER_LEN as usize + payload.len();
                    if dropping {
                        report.records_dropped += 1;
                        dropping = continues;
                        continue;
                    }
                    unit.push(payload);
                    if !continues {
                        let unit = std::mem::take(&mut unit);
                        if unit.iter().all(|p| readable(p)) {
                            report.kept += unit.len();
                            units.push(unit);
                        } else {
                            report.records_dropped += unit.len();
                        }
                    }
                }
                None => {
                    // the damaged frame's own header, if it holds: did it end its unit?
                    let header = (pos + 8 <= bytes.len()).then(|| {
                        split_len(
                            u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()),
                            version,
                        )
                    });
                    report.records_dropped += unit.len();
                    let broke_a_unit = !unit.is_empty() || dropping;
                    unit.clear();
                    let next = next_frame(&bytes, pos + 1, version, largest);
                    let end = next.unwrap_or(bytes.len());
                    let header_holds = header.is_some_and(|(len, _)| {
                        pos + FRAME_HEADER_LEN as usize + len as usize == end
                    });
                    dropping = match header {
                        Some((_, continues)) if header_holds => continues,
                        _ => broke_a_unit || version >= 2,
                    };
                    report.skipped.push((pos as u64, (end - pos) as u64));
                    pos = end;
                }
            }
        }
        report.records_dropped += unit.len();
        DurableLog::rewrite_units(path, units)?;
        drop(file);
        Ok(report)
    }
}

/// The payload of a complete, checksum-valid frame at `pos` and whether its unit continues.
fn frame_at(bytes: &[u8], pos: usize, version: u32) -> Option<(&[u8], bool)> {
    let fh = FRAME_HEADER_LEN as usize;
    let header = bytes.get(pos..pos + fh)?;
    let (len, continues) = split_len(u32::from_le_bytes(header[..4].try_into().ok()?), version);
    if len == 0 || len > MAX_PAYLOAD {
        return None;
    }
    let payload = bytes.get(pos + fh..pos + fh + len as usize)?;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    (frame_crc(payload, continues) == crc).then_some((payload, continues))
}

/// Where the next valid frame starts at or after `from` (the bounds of
/// [`valid_frame_follows`]: at most twice the `largest` payload seen, at least 1 MiB, and
/// followed by the end or a plausible frame header).
fn next_frame(bytes: &[u8], from: usize, version: u32, largest: u32) -> Option<usize> {
    let cap = largest.saturating_mul(2).clamp(1 << 20, MAX_PAYLOAD) as usize;
    let fh = FRAME_HEADER_LEN as usize;
    let plausible = |at: usize| {
        bytes.get(at..at + 4).is_some_and(|h| {
            let (len, _) = split_len(u32::from_le_bytes(h.try_into().unwrap()), version);
            len != 0 && len <= MAX_PAYLOAD
        })
    };
    (from..bytes.len().saturating_sub(fh)).find(|&p| {
        let (len, _) = split_len(
            u32::from_le_bytes(bytes[p..p + 4].try_into().unwrap()),
            version,
        );
        let len = len as usize;
        if len == 0 || len > cap || p + fh + len > bytes.len() {
            return false;
        }
        let end = p + fh + len;
        if end + fh <= bytes.len() && !plausible(end) {
            return false;
        }
        frame_at(bytes, p, version).is_some()
    })
}

impl Drop for DurableLog {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::error!("failed to sync buffer log on close: {e}");
        }
    }
}

/// A frame's checksum: CRC-32 of its payload, followed by one more byte for a frame whose unit
/// continues (so that a flipped [`CONTINUES`] bit is a checksum mismatch, not a silent regrouping).
fn frame_crc(payload: &[u8], continues: bool) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(payload);
    if continues {
        h.update(&[0xC0]);
    }
    h.finalize()
}

/// A frame header's payload length and whether its unit continues (`version` 1 has no units:
/// the top bit is then part of the length, which makes it too long).
fn split_len(raw: u32, version: u32) -> (u32, bool) {
    if version >= 2 {
        (raw & !CONTINUES, raw & CONTINUES != 0)
    } else {
        (raw, false)
    }
}

/// Takes the log's advisory lock, or says that another open log holds it.
fn lock(file: &File, path: &Path) -> Result<(), LogError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Locked {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(LogError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The version of a file header (`head`: its first [`HEADER_LEN`] bytes), or why it is not the
/// header of a log this build reads.
fn header_version(head: &[u8], path: &Path) -> Result<u32, LogError> {
    let not_a_log = |reason: String| LogError::NotALog {
        path: path.to_path_buf(),
        reason,
    };
    if &head[..8] != MAGIC {
        return Err(not_a_log("bad magic bytes".into()));
    }
    let version = u32::from_le_bytes(head[8..12].try_into().expect("a 12-byte header"));
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(not_a_log(format!(
            "log version {version}, this build reads versions {OLDEST_VERSION} to {VERSION}"
        )));
    }
    Ok(version)
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

/// Walk the frames after the header; hand over each unit's records once its last frame is read;
/// stop at the first bad frame and decide whether it is a tail. An unfinished unit before the
/// end (or before a tail that is cut) goes with the tail.
fn scan(
    file: &mut File,
    path: &Path,
    file_len: u64,
    version: u32,
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
    // the frames of the unit being read: (offset, payload); handed over at its last frame
    let mut unit: Vec<(u64, Vec<u8>)> = vec![];
    let mut unit_start = HEADER_LEN;
    // the largest payload read: what a frame that follows damage can be expected to hold
    let mut largest = 0u32;
    let problem = 'frames: loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break if unit.is_empty() {
                None
            } else {
                Some(TailProblem::UnfinishedUnit)
            };
        }
        if remaining < FRAME_HEADER_LEN {
            break Some(TailProblem::TornFrameHeader);
        }
        let mut fh = [0u8; FRAME_HEADER_LEN as usize];
        reader.read_exact(&mut fh).map_err(io)?;
        let (len, continues) = split_len(u32::from_le_bytes(fh[..4].try_into().unwrap()), version);
        let crc = u32::from_le_bytes(fh[4..].try_into().unwrap());
        if len == 0 || len > MAX_PAYLOAD {
            break Some(TailProblem::BadLength(len));
        }
        if remaining - FRAME_HEADER_LEN < len as u64 {
            break Some(TailProblem::TornPayload);
        }
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload).map_err(io)?;
        if frame_crc(&payload, continues) != crc {
            break Some(TailProblem::ChecksumMismatch);
        }
        unit.push((offset, payload));
        largest = largest.max(len);
        offset += FRAME_HEADER_LEN + len as u64;
        if continues {
            continue;
        }
        for (at, payload) in unit.drain(..) {
            if let Err(message) = on_record(&payload) {
                // a repair cuts here like at any bad frame; otherwise the reader must say why
                if tail_rule == TailRule::CutAtFirstBad {
                    tracing::warn!(
                        "{}: record {records} at offset {at} cannot be decoded ({message}); cut by the repair",
                        path.display()
                    );
                    offset = at;
                    unit_start = at;
                    break 'frames Some(TailProblem::Undecodable);
                }
                return Err(LogError::BadPayload {
                    path: path.to_path_buf(),
                    index: records,
                    offset: at,
                    message,
                });
            }
            records += 1;
        }
        unit_start = offset;
    };
    let unit_records_cut = unit.len();
    let Some(problem) = problem else {
        return Ok(Recovery {
            records,
            valid_bytes: offset,
            truncated_bytes: 0,
            problem: None,
            unit_records_cut: 0,
        });
    };
    let bytes_after = file_len - offset;
    let is_tail = match problem {
        TailProblem::TornFrameHeader | TailProblem::UnfinishedUnit => true,
        // a payload that runs past the end is a torn append only if no valid frame follows the
        // damaged header: a flipped bit in a length field in the middle of the log looks the
        // same, and cutting there would drop every committed record after it without a word
        TailProblem::TornPayload => {
            !valid_frame_follows(file, path, (offset, file_len), version, largest)?
        }
        TailProblem::ChecksumMismatch => {
            // The bad frame is the last one when it ends exactly at the end of the file.
            let mut fh = [0u8; 4];
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            file.read_exact(&mut fh).map_err(io)?;
            let (len, _) = split_len(u32::from_le_bytes(fh), version);
            let ends_the_file = offset + FRAME_HEADER_LEN + len as u64 == file_len
                || rest_is_zero(file, path, offset, file_len)?;
            ends_the_file && !valid_frame_follows(file, path, (offset, file_len), version, largest)?
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
        valid_bytes: unit_start,
        truncated_bytes: file_len - unit_start,
        problem: Some(problem),
        unit_records_cut,
    })
}

/// Whether a complete, checksum-valid frame starts anywhere after the frame header at `from`
/// (before `to`). Only the stretch where the next frame can start is read: a real frame header
/// follows a damaged one within one payload. Candidates hold at most twice the `largest` payload
/// the log has shown (and at least 1 MiB) and are followed by the end of the file or by a frame
/// header of a plausible length: without these bounds every byte of a long stretch of garbage
/// after a torn frame started a checksum over megabytes (a 60 MiB tail took minutes to open).
fn valid_frame_follows(
    file: &mut File,
    path: &Path,
    (from, to): (u64, u64),
    version: u32,
    largest: u32,
) -> Result<bool, LogError> {
    let io = |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let start = from + 1;
    if start >= to {
        return Ok(false);
    }
    let cap = largest.saturating_mul(2).clamp(1 << 20, MAX_PAYLOAD);
    let window = (to - start).min(2 * (FRAME_HEADER_LEN + cap as u64));
    let mut buf = vec![0u8; window as usize];
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    file.read_exact(&mut buf).map_err(io)?;
    let fh = FRAME_HEADER_LEN as usize;
    let plausible = |at: usize| -> Option<usize> {
        let (len, _) = split_len(
            u32::from_le_bytes(buf[at..at + 4].try_into().ok()?),
            version,
        );
        (len != 0 && len <= MAX_PAYLOAD).then_some(len as usize)
    };
    for p in 0..buf.len().saturating_sub(fh) {
        let Some(len) = plausible(p).filter(|&l| l <= cap as usize) else {
            continue;
        };
        let end = p + fh + len;
        if end > buf.len() {
            continue;
        }
        // what follows a real frame: the end of the file (or of what was read), or another
        // frame's header
        if end + fh <= buf.len() && plausible(end).is_none() {
            continue;
        }
        let continues = split_len(
            u32::from_le_bytes(buf[p..p + 4].try_into().unwrap()),
            version,
        )
        .1;
        let crc = u32::from_le_bytes(buf[p + 4..p + fh].try_into().unwrap());
        if frame_crc(&buf[p + fh..end], continues) == crc {
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

    #[test]
    fn a_unit_is_recovered_whole_or_not_at_all_and_a_flipped_continue_bit_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("units");
        let (mut log, _) =
            DurableLog::open(&path, FsyncPolicy::Never, TailRule::CutTailOnly, |_| Ok(())).unwrap();
        log.append(b"alone").unwrap();
        log.append_unit([&b"a1"[..], b"a2", b"a3"]).unwrap();
        // a bad payload refuses the whole unit, nothing of it is appended
        assert!(log.append_unit([&b"b1"[..], b""]).is_err());
        assert_eq!(log.records(), 4);
        log.append_unit([&b"c1"[..], b"c2"]).unwrap();
        drop(log);
        let full = std::fs::read(&path).unwrap();
        let (got, rec) = read_all(&path).unwrap();
        assert_eq!(got.len(), 6, "{rec}");
        // cut inside the last unit's second frame: c1 goes too
        std::fs::write(&path, &full[..full.len() - 1]).unwrap();
        let (got, rec) = read_all(&path).unwrap();
        assert_eq!(
            got,
            vec![
                b"alone".to_vec(),
                b"a1".to_vec(),
                b"a2".to_vec(),
                b"a3".to_vec()
            ]
        );
        assert_eq!(
            (rec.unit_records_cut, rec.problem),
            (1, Some(TailProblem::TornPayload))
        );
        // cut right after c1's frame: every frame whole, the unit unfinished
        let c1_end = full.len() - (8 + 2);
        std::fs::write(&path, &full[..c1_end]).unwrap();
        let (got, rec) = read_all(&path).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(
            (rec.unit_records_cut, rec.problem),
            (1, Some(TailProblem::UnfinishedUnit))
        );
        // the continue bit of a1 flipped: a checksum mismatch, never a silent regrouping
        let mut flipped = full.clone();
        let a1 = HEADER_LEN as usize + 8 + 5;
        flipped[a1 + 3] ^= 0x80;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            read_all(&path),
            Err(LogError::Corrupt {
                records_before: 1,
                ..
            })
        ));
    }

    #[test]
    fn a_version_1_log_is_read_and_marked_version_2() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&1u32.to_le_bytes());
        for p in [&b"one"[..], b"two"] {
            bytes.extend_from_slice(&(p.len() as u32).to_le_bytes());
            bytes.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
            bytes.extend_from_slice(p);
        }
        std::fs::write(&path, &bytes).unwrap();
        let (got, rec) = read_all(&path).unwrap();
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(rec.problem.is_none());
        assert_eq!(std::fs::read(&path).unwrap()[8..12], VERSION.to_le_bytes());
    }

    #[test]
    fn repair_resyncs_after_mid_file_damage_and_drops_only_the_broken_unit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repair");
        let (mut log, _) =
            DurableLog::open(&path, FsyncPolicy::Never, TailRule::CutTailOnly, |_| Ok(())).unwrap();
        for i in 0..50u8 {
            log.append(&[i + 1; 30]).unwrap();
        }
        log.append_unit([&[100u8; 30][..], &[101; 30], &[102; 30]])
            .unwrap();
        for i in 0..50u8 {
            log.append(&[i + 110; 30]).unwrap();
        }
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let frame = 8 + 30;
        // one record in the middle, then the unit's second frame
        bytes[HEADER_LEN as usize + 20 * frame + 12] ^= 0xff;
        bytes[HEADER_LEN as usize + 51 * frame + 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            read_all(&path).is_err(),
            "a plain open refuses mid-file damage"
        );
        let report = DurableLog::repair(&path, |_| true).unwrap();
        assert_eq!(report.skipped.len(), 2, "{report}");
        // the damaged record, and the unit's two good frames with its damaged one
        assert_eq!((report.kept, report.records_dropped), (99, 2), "{report}");
        let (got, rec) = read_all(&path).unwrap();
        assert!(rec.problem.is_none());
        assert_eq!(got.len(), 99);
        assert_eq!(got.last().unwrap(), &vec![159u8; 30]);
        assert!(!got.contains(&vec![100u8; 30]) && !got.contains(&vec![102u8; 30]));
        // unreadable records are dropped whole too
        let report = DurableLog::repair(&path, |p| p[0] != 159).unwrap();
        assert_eq!((report.kept, report.records_dropped), (98, 1), "{report}");
    }

    #[test]
    fn a_torn_frame_before_megabytes_of_garbage_opens_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage");
        let records: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8 + 1; 200]).collect();
        write_log(&path, &records);
        let mut bytes = std::fs::read(&path).unwrap();
        // a frame header claiming more than the file holds, then 24 MiB of noise
        bytes.extend_from_slice(&(60u32 << 20).to_le_bytes());
        bytes.extend_from_slice(&[7, 7, 7, 7]);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        bytes.extend((0..24 << 20).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        std::fs::write(&path, &bytes).unwrap();
        let t0 = std::time::Instant::now();
        let (got, rec) = read_all(&path).unwrap();
        assert_eq!(got.len(), 20, "{rec}");
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            t0.elapsed()
        );
    }
}
