//! The JSONL interchange format for trajectories (documented in `docs/formats.md`).
//!
//! One trajectory per line: `{"version":1,"trajectory":{...}}`. Readers reject unknown versions
//! and report every bad line with its 1-based line number and column.

use crate::records::Trajectory;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Version of the interchange format this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// A bad line (or I/O failure) while reading or writing trajectory JSONL.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A line is not a valid trajectory record.
    #[error("{path}:{line}:{column}: {message}")]
    BadLine {
        /// File involved.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// 1-based column (1 when the whole line is at fault).
        column: usize,
        /// What was expected.
        message: String,
    },
}

#[derive(Serialize)]
struct LineOut<'a> {
    version: u32,
    trajectory: &'a Trajectory,
}

#[derive(Deserialize)]
struct LineIn {
    version: u32,
    trajectory: Trajectory,
}

/// Serialise one trajectory as a single JSONL line (without the newline).
pub fn to_line(trajectory: &Trajectory) -> String {
    serde_json::to_string(&LineOut {
        version: FORMAT_VERSION,
        trajectory,
    })
    .expect("trajectory serialisation cannot fail: all keys are strings")
}

/// Parse one JSONL line; `line_no` and `path` are only used in the error.
pub fn parse_line(text: &str, path: &Path, line_no: usize) -> Result<Trajectory, JsonlError> {
    let bad = |column: usize, message: String| JsonlError::BadLine {
        path: path.to_path_buf(),
        line: line_no,
        column,
        message,
    };
    let parsed: LineIn = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        if message.starts_with("number out of range") {
            // a reward of 1e39: valid JSON, but it overflows the 32-bit float it is read into
            return bad(
                e.column().max(1),
                format!("{message}: expected a finite number (JSON numbers beyond ±3.4e38 overflow a 32-bit float)"),
            );
        }
        bad(
            e.column().max(1),
            format!("expected a trajectory record {{\"version\":{FORMAT_VERSION},\"trajectory\":{{...}}}}: {message}"),
        )
    })?;
    if parsed.version != FORMAT_VERSION {
        return Err(bad(
            1,
            format!(
                "unsupported format version {} (this build reads version {FORMAT_VERSION})",
                parsed.version
            ),
        ));
    }
    let t = parsed.trajectory;
    if let Some((field, value)) = t.non_finite() {
        return Err(bad(
            1,
            format!(
                "trajectory.{field} is {value}: expected a finite number (JSON numbers beyond ±3.4e38 overflow a 32-bit float)"
            ),
        ));
    }
    if t.outcome.length as usize != t.steps.len() {
        return Err(bad(
            1,
            format!(
                "outcome.length is {} but the trajectory has {} steps",
                t.outcome.length,
                t.steps.len()
            ),
        ));
    }
    Ok(t)
}

/// Read every trajectory of a JSONL file; the first bad line stops the read with a located error.
pub fn read_file(path: &Path) -> Result<Vec<Trajectory>, JsonlError> {
    let mut out = Vec::new();
    for_each_in_file(path, |_, t| {
        out.push(t);
        Ok(())
    })?;
    Ok(out)
}

/// Stream the trajectories of a JSONL file to `f` (with their 1-based line numbers) without
/// holding them all in memory.
pub fn for_each_in_file(
    path: &Path,
    mut f: impl FnMut(usize, Trajectory) -> Result<(), JsonlError>,
) -> Result<(), JsonlError> {
    let io = |source| JsonlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let reader = std::io::BufReader::new(file);
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| match source.kind() {
            std::io::ErrorKind::InvalidData => JsonlError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                column: 1,
                message: "line is not valid UTF-8".into(),
            },
            _ => io(source),
        })?;
        // a byte-order mark at the start of the file (editors on Windows write one) is not data
        let line = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(&line)
        } else {
            &line
        };
        if line.trim().is_empty() {
            continue;
        }
        f(i + 1, parse_line(line, path, i + 1)?)?;
    }
    Ok(())
}

/// Writes trajectories as JSONL, one per line.
pub struct JsonlWriter<W: Write> {
    inner: W,
    path: PathBuf,
    written: usize,
}

impl JsonlWriter<std::io::BufWriter<std::fs::File>> {
    /// Create (truncate) a JSONL file, creating parent directories.
    pub fn create(path: &Path) -> Result<Self, JsonlError> {
        let io = |source| JsonlError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = std::fs::File::create(path).map_err(io)?;
        Ok(Self::new(std::io::BufWriter::new(file), path))
    }
}

impl<W: Write> JsonlWriter<W> {
    /// Wrap any writer; `path` names it in errors.
    pub fn new(inner: W, path: &Path) -> Self {
        Self {
            inner,
            path: path.to_path_buf(),
            written: 0,
        }
    }

    /// Append one trajectory; one with a non-finite reward is refused (it could not be read back).
    pub fn write(&mut self, t: &Trajectory) -> Result<(), JsonlError> {
        if let Some((field, value)) = t.non_finite() {
            return Err(JsonlError::BadLine {
                path: self.path.clone(),
                line: self.written + 1,
                column: 1,
                message: format!(
                    "refusing to write task {}: {field} is {value}, not a finite number",
                    t.task.id
                ),
            });
        }
        let mut line = to_line(t);
        line.push('\n');
        self.inner
            .write_all(line.as_bytes())
            .map_err(|source| JsonlError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.written += 1;
        Ok(())
    }

    /// Number of trajectories written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Flush buffered output.
    pub fn finish(mut self) -> Result<W, JsonlError> {
        self.inner.flush().map_err(|source| JsonlError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.inner)
    }
}

/// What kind of JSON value `v` is, as an error message says it ("a string", "an object", ...).
pub fn kind_of(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::*;

    pub(crate) fn sample() -> Trajectory {
        let obs = Observation {
            lines: vec!["[kitchen] room: you are in the kitchen".into()],
            instruction: "find the apple".into(),
            admissible: vec!["look".into()],
            feedback: String::new(),
        };
        let step = Step {
            state: obs.clone(),
            action: "look".into(),
            reward: 1.0,
            next_state: obs,
            done: true,
            truncated: false,
            reasoning: None,
            provenance: Provenance::Real,
            reward_known: true,
        };
        Trajectory {
            task: Task {
                id: "t1".into(),
                instruction: "find the apple".into(),
                params: Default::default(),
                difficulty: 1,
                origin: TaskOrigin::Seed,
            },
            env_id: "scenario:x.ron".into(),
            seed: 3,
            provenance: Provenance::Real,
            policy: "expert".into(),
            outcome: Trajectory::outcome_from_steps(std::slice::from_ref(&step), true),
            steps: vec![step],
        }
    }

    #[test]
    fn round_trip() {
        let t = sample();
        let line = to_line(&t);
        assert!(line.starts_with("{\"version\":1,"));
        let back = parse_line(&line, Path::new("x"), 1).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn bad_lines_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        let good = to_line(&sample());
        std::fs::write(
            &p,
            format!("{good}\n\n{good}\n{{\"version\":1,\"trajectory\":{{\"task\":3}}}}\n"),
        )
        .unwrap();
        let err = read_file(&p).unwrap_err().to_string();
        assert!(err.contains("t.jsonl:4:"), "{err}");
        let v2 = good.replacen("\"version\":1", "\"version\":2", 1);
        std::fs::write(&p, format!("{v2}\n")).unwrap();
        let err = read_file(&p).unwrap_err().to_string();
        assert!(err.contains(":1:1: unsupported format version 2"), "{err}");
    }

    #[test]
    fn inconsistent_length_is_rejected() {
        let mut t = sample();
        t.outcome.length = 5;
        let err = parse_line(&to_line(&t), Path::new("f"), 7)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("f:7:1: outcome.length is 5"), "{err}");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use crate::records::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[ -~]{0,12}"
    }

    fn obs() -> impl Strategy<Value = Observation> {
        (
            proptest::collection::vec(text(), 0..4),
            text(),
            proptest::collection::vec(text(), 0..4),
            text(),
        )
            .prop_map(|(lines, instruction, admissible, feedback)| Observation {
                lines,
                instruction,
                admissible,
                feedback,
            })
    }

    fn step() -> impl Strategy<Value = Step> {
        (
            obs(),
            text(),
            -1.0f32..1.0,
            obs(),
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(text()),
            any::<bool>(),
        )
            .prop_map(
                |(state, action, reward, next_state, done, truncated, reasoning, synth)| Step {
                    state,
                    action,
                    reward,
                    next_state,
                    done,
                    truncated,
                    reasoning,
                    provenance: if synth {
                        Provenance::Synthetic
                    } else {
                        Provenance::Real
                    },
                    reward_known: true,
                },
            )
    }

    fn trajectory() -> impl Strategy<Value = Trajectory> {
        (
            text(),
            text(),
            any::<u64>(),
            proptest::collection::vec(step(), 0..4),
            any::<bool>(),
            proptest::option::of(text()),
        )
            .prop_map(
                |(id, instruction, seed, steps, success, parent)| Trajectory {
                    task: Task {
                        id,
                        instruction,
                        params: [("k".to_string(), "v".to_string())].into_iter().collect(),
                        difficulty: 2,
                        origin: parent.map_or(TaskOrigin::Seed, |parent| {
                            TaskOrigin::GeneratedFrom { parent }
                        }),
                    },
                    env_id: "e".into(),
                    seed,
                    provenance: Provenance::Real,
                    policy: "p".into(),
                    outcome: Trajectory::outcome_from_steps(&steps, success),
                    steps,
                },
            )
    }

    proptest! {
        /// Any trajectory survives a write/read round trip.
        #[test]
        fn round_trip(t in trajectory()) {
            let back = parse_line(&to_line(&t), Path::new("f"), 1).unwrap();
            prop_assert_eq!(back, t);
        }

        /// Cutting or corrupting a line never panics; a failure names the line.
        #[test]
        fn damaged_lines_give_located_errors(t in trajectory(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let line = to_line(&t);
            let mut bytes = line.into_bytes();
            let i = cut.index(bytes.len());
            bytes[i] = byte;
            let damaged = String::from_utf8_lossy(&bytes).into_owned();
            if let Err(e) = parse_line(&damaged, Path::new("f.jsonl"), 9) {
                prop_assert!(e.to_string().starts_with("f.jsonl:9:"), "{}", e);
            }
            let truncated = String::from_utf8_lossy(&bytes[..bytes.len() / 2]).into_owned();
            let e = parse_line(&truncated, Path::new("f.jsonl"), 3).unwrap_err();
            prop_assert!(e.to_string().starts_with("f.jsonl:3:"), "{}", e);
        }
    }
}
