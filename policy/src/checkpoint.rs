//! Checkpoint files: the header schema ([`Header`]) and the file holding the run's header (config, network shape, vocabulary,
//! counters, RNG state) as JSON, the model and the optimizer state as burnpack bytes, and a
//! CRC-32 over everything. Written to a temporary file, synced and renamed into place, so a
//! crash leaves the previous checkpoint intact. A learner is saved in it and resumed from it here
//! (`Trainer::save_with_extra`, `Trainer::resume`), beside the format they read and write.
//!
//! Layout: `DGCKPT01`, then three length-prefixed (u64 LE) sections (header JSON, model, optimizer),
//! then the CRC-32 (u32 LE) of all preceding bytes.

use crate::PolicyError;
use crate::backend::SelectedDevice;
use crate::config::TrainConfig;
use crate::net::PolicyNet;
use crate::shape::NetShape;
use crate::state::{Counters, RngState};
use crate::text::{Featurizer, Vocab};
use crate::trainer::{Trainer, WEIGHT_INIT};
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

const MAGIC: &[u8; 8] = b"DGCKPT01";

/// The three sections of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointParts {
    /// Run header, JSON.
    pub header: Vec<u8>,
    /// Model record bytes.
    pub model: Vec<u8>,
    /// Optimizer record bytes.
    pub optimizer: Vec<u8>,
}

fn corrupt(path: &Path, why: impl Into<String>) -> PolicyError {
    PolicyError::CorruptCheckpoint {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// Encodes the parts into the file format.
pub fn encode(parts: &CheckpointParts) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(parts.header.len() + parts.model.len() + parts.optimizer.len() + 40);
    out.extend_from_slice(MAGIC);
    for section in [&parts.header, &parts.model, &parts.optimizer] {
        out.extend_from_slice(&(section.len() as u64).to_le_bytes());
        out.extend_from_slice(section);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a checkpoint read from `path`, naming what is wrong with a damaged one.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<CheckpointParts, PolicyError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(path, "not a dreamgym checkpoint (bad magic bytes)"));
    }
    if bytes.len() < MAGIC.len() + 3 * 8 + 4 {
        return Err(corrupt(path, format!("truncated: {} bytes", bytes.len())));
    }
    let mut pos = MAGIC.len();
    let mut sections = Vec::with_capacity(3);
    for name in ["header", "model", "optimizer"] {
        let Some(len_bytes) = bytes.get(pos..pos + 8) else {
            return Err(corrupt(
                path,
                format!("truncated before the {name} section"),
            ));
        };
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        pos += 8;
        let Some(section) = pos.checked_add(len).and_then(|end| bytes.get(pos..end)) else {
            return Err(corrupt(
                path,
                format!("truncated inside the {name} section ({len} bytes announced)"),
            ));
        };
        sections.push(section.to_vec());
        pos += len;
    }
    let Some(crc_bytes) = bytes.get(pos..pos + 4) else {
        return Err(corrupt(path, "truncated before the checksum"));
    };
    if bytes.len() != pos + 4 {
        return Err(corrupt(
            path,
            format!(
                "{} trailing bytes after the checksum",
                bytes.len() - pos - 4
            ),
        ));
    }
    let stored = u32::from_le_bytes(crc_bytes.try_into().expect("4 bytes"));
    let actual = crc32fast::hash(&bytes[..pos]);
    if stored != actual {
        return Err(corrupt(
            path,
            format!("checksum mismatch (stored {stored:08x}, computed {actual:08x})"),
        ));
    }
    let optimizer = sections.pop().expect("3 sections");
    let model = sections.pop().expect("3 sections");
    let header = sections.pop().expect("3 sections");
    Ok(CheckpointParts {
        header,
        model,
        optimizer,
    })
}

/// Writes a checkpoint atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, parts: &CheckpointParts) -> Result<(), PolicyError> {
    let io = |e: std::io::Error| PolicyError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io)?;
        f.write_all(&encode(parts)).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads and verifies a checkpoint.
pub fn read(path: &Path) -> Result<CheckpointParts, PolicyError> {
    let bytes = fs::read(path).map_err(|e| PolicyError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    decode(path, &bytes)
}

/// Version of the header schema; a checkpoint of another version is refused.
pub(crate) const CHECKPOINT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
/// The header section: what a resumed run must match and restore.
pub(crate) struct Header {
    pub(crate) format: u32,
    pub(crate) config: TrainConfig,
    pub(crate) shape: NetShape,
    pub(crate) vocab: Vocab,
    pub(crate) vocab_fingerprint: u32,
    pub(crate) counters: Counters,
    pub(crate) rng: RngState,
    pub(crate) reference: bool,
    /// State of whoever drives the trainer (e.g. a curriculum), saved atomically with it.
    #[serde(default)]
    pub(crate) extra: serde_json::Value,
}

/// A checkpoint that does not fit the run resuming from it: `what` differs.
fn mismatched(path: &Path, what: &str, checkpoint: String, run: String) -> PolicyError {
    PolicyError::MismatchedCheckpoint {
        path: path.to_path_buf(),
        what: what.to_string(),
        checkpoint,
        run,
    }
}

/// A network or optimizer record of the checkpoint at `path` that burn could not write or read.
fn record_error(path: &Path, e: burn::store::RecordError) -> PolicyError {
    PolicyError::Record {
        path: path.to_path_buf(),
        why: e.to_string(),
    }
}

impl Header {
    /// Checks this header against the run resuming from it (its format version, the
    /// vocabulary's integrity and, when given, the vocabulary and `hidden` the run would use);
    /// returns the checkpoint's vocabulary, reindexed.
    fn check(
        &self,
        path: &Path,
        expected_vocab: Option<&Vocab>,
        hidden: Option<usize>,
    ) -> Result<Vocab, PolicyError> {
        let mismatch = |what: &str, checkpoint, run| mismatched(path, what, checkpoint, run);
        if self.format != CHECKPOINT_FORMAT {
            return Err(mismatch(
                "format version",
                self.format.to_string(),
                CHECKPOINT_FORMAT.to_string(),
            ));
        }
        let mut vocab = self.vocab.clone();
        vocab.reindex();
        if vocab.fingerprint() != self.vocab_fingerprint {
            return Err(PolicyError::CorruptCheckpoint {
                path: path.to_path_buf(),
                why: "vocabulary does not match its fingerprint".into(),
            });
        }
        if let Some(expected) = expected_vocab
            && expected.fingerprint() != vocab.fingerprint()
        {
            return Err(mismatch(
                "vocabulary (the scenario or its data differ)",
                format!(
                    "{} words, fingerprint {:08x}",
                    vocab.known_words(),
                    vocab.fingerprint()
                ),
                format!(
                    "{} words, fingerprint {:08x}",
                    expected.known_words(),
                    expected.fingerprint()
                ),
            ));
        }
        if let Some(h) = hidden
            && h != self.shape.hidden
        {
            return Err(mismatch(
                "model size (hidden)",
                self.shape.hidden.to_string(),
                h.to_string(),
            ));
        }
        Ok(vocab)
    }
}

/// Reads a checkpoint and parses its header.
pub(crate) fn read_with_header(path: &Path) -> Result<(Header, CheckpointParts), PolicyError> {
    let parts = read(path)?;
    let header =
        serde_json::from_slice(&parts.header).map_err(|e| PolicyError::CorruptCheckpoint {
            path: path.to_path_buf(),
            why: format!("unreadable header: {e}"),
        })?;
    Ok((header, parts))
}

/// The training configuration stored in a checkpoint (to rebuild what a resumed run must match).
pub fn checkpoint_config(path: &Path) -> Result<TrainConfig, PolicyError> {
    Ok(read_with_header(path)?.0.config)
}

/// The `extra` state saved with [`crate::Trainer::save_with_extra`] (null when none).
pub fn checkpoint_extra(path: &Path) -> Result<serde_json::Value, PolicyError> {
    Ok(read_with_header(path)?.0.extra)
}

/// Saving a learner in this format and resuming one from it.
impl Trainer {
    /// Writes a checkpoint (atomically) to `path`.
    pub fn save(&self, path: &Path) -> Result<(), PolicyError> {
        self.save_with_extra(path, serde_json::Value::Null)
    }

    /// Writes a checkpoint holding also `extra`, the state of whatever drives this trainer (read
    /// back with [`checkpoint_extra`]), so both are saved in one atomic write.
    pub fn save_with_extra(
        &self,
        path: &Path,
        extra: serde_json::Value,
    ) -> Result<(), PolicyError> {
        let header = Header {
            format: CHECKPOINT_FORMAT,
            config: self.cfg.clone(),
            shape: self.net.shape(),
            vocab: self.featurizer.vocab().clone(),
            vocab_fingerprint: self.featurizer.vocab().fingerprint(),
            counters: self.counters,
            rng: RngState::of(&self.rng),
            reference: self.reference.is_some(),
            extra,
        };
        let record_err = |e| record_error(path, e);
        let model = self
            .net
            .clone()
            .into_record()
            .into_bytes()
            .map_err(record_err)?;
        let optimizer = self.optim.into_bytes().map_err(record_err)?;
        let parts = CheckpointParts {
            header: serde_json::to_vec(&header).expect("header serialises"),
            model: model.to_vec(),
            optimizer: optimizer.to_vec(),
        };
        write_atomic(path, &parts)
    }

    /// Resumes from a checkpoint. `expected_vocab`, when given, is the vocabulary this run would
    /// build for its environment: a checkpoint over another vocabulary (another scenario) is an
    /// error, as is one whose network `hidden` differs from `hidden` when given.
    pub fn resume(
        path: &Path,
        device: &SelectedDevice,
        expected_vocab: Option<&Vocab>,
        hidden: Option<usize>,
    ) -> Result<Self, PolicyError> {
        let (header, parts) = read_with_header(path)?;
        let vocab = header.check(path, expected_vocab, hidden)?;
        let mismatch = |what: &str, checkpoint, run| mismatched(path, what, checkpoint, run);
        let featurizer = Featurizer::new(vocab);
        let shape = NetShape {
            state_dim: featurizer.state_dim(),
            action_dim: featurizer.action_dim(),
            hidden: header.shape.hidden,
        };
        if shape != header.shape {
            return Err(mismatch(
                "network shape",
                format!("{:?}", header.shape),
                format!("{shape:?}"),
            ));
        }
        let ad = device.autodiff();
        let record_err = |e| record_error(path, e);
        let record =
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(parts.model)).map_err(record_err)?;
        // (drawing throwaway initial weights uses the shared RNG too: not while another thread
        // seeds it)
        let fresh = {
            let _guard = WEIGHT_INIT.lock().unwrap_or_else(|e| e.into_inner());
            PolicyNet::new(shape, &ad)
        };
        let net = fresh.try_load_record(record).map_err(record_err)?;
        if net.shape() != shape {
            return Err(mismatch(
                "network shape",
                format!("{:?}", net.shape()),
                format!("{shape:?}"),
            ));
        }
        let optim = header
            .config
            .optimizer
            .adam()
            .init()
            .from_bytes(Bytes::from_bytes_vec(parts.optimizer))
            .map_err(record_err)?;
        let rng = header
            .rng
            .restore()
            .ok_or_else(|| PolicyError::CorruptCheckpoint {
                path: path.to_path_buf(),
                why: "unreadable RNG state".into(),
            })?;
        Ok(Self::assemble(
            header.config,
            featurizer,
            (device.kind, ad),
            net,
            optim,
            header.reference,
            rng,
            header.counters,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts() -> CheckpointParts {
        CheckpointParts {
            header: b"{\"a\":1}".to_vec(),
            model: vec![1, 2, 3, 4],
            optimizer: vec![9; 17],
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run/ckpt.bin");
        write_atomic(&p, &parts()).unwrap();
        assert_eq!(read(&p).unwrap(), parts());
        assert!(!p.with_extension("tmp").exists());
    }

    #[test]
    fn names_truncation_corruption_and_foreign_files() {
        let p = Path::new("x.ckpt");
        let bytes = encode(&parts());
        let err = decode(p, &bytes[..bytes.len() - 9])
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        let err = decode(p, &flipped).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        let err = decode(p, b"hello world, not a checkpoint at all")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad magic"), "{err}");
        assert!(err.contains("x.ckpt"), "names the file: {err}");
    }

    proptest! {
        #[test]
        fn any_single_byte_change_or_cut_is_detected(pos in 0usize..60, cut in 1usize..60, bit in 0u8..8) {
            let bytes = encode(&parts());
            let pos = pos % bytes.len();
            let mut flipped = bytes.clone();
            flipped[pos] ^= 1 << bit;
            prop_assert!(decode(Path::new("p"), &flipped).is_err());
            let cut = cut.min(bytes.len());
            prop_assert!(decode(Path::new("p"), &bytes[..bytes.len() - cut]).is_err());
        }
    }
}
