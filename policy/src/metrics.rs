//! Per-iteration metrics and the run's metrics files (`metrics.jsonl` and `metrics.csv`).

use crate::PolicyError;
use crate::loss::StepStats;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// What one iteration measured. Everything but the `*_per_s` and `seconds` fields is a
/// deterministic function of the seed on the CPU backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationMetrics {
    /// 1-based iteration number.
    pub iteration: usize,
    /// Environment steps taken so far (all iterations).
    pub env_steps: u64,
    /// Episodes finished in this iteration.
    pub episodes: usize,
    /// Success rate of those episodes that started at their task's beginning (branched ones are
    /// left out unless all branched; NaN-free: 0 when none finished).
    pub success: f32,
    /// Mean return of those episodes.
    pub mean_return: f32,
    /// Mean length of those episodes.
    pub mean_length: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Mean step statistics of the update phase.
    pub update: StepStats,
    /// Samples in the update phase.
    pub samples: usize,
    /// Env steps per second in the rollout phase.
    pub rollout_steps_per_s: f64,
    /// Samples per second through the update phase (epochs x samples / time).
    pub update_samples_per_s: f64,
    /// Wall-clock seconds of the iteration.
    pub seconds: f64,
    /// (sampler index, success 0/1) of every finished episode that started at its task's
    /// beginning (for a curriculum; not written).
    #[serde(skip)]
    pub outcomes: Vec<(usize, f32)>,
}

impl IterationMetrics {
    /// The metrics without timing fields (for comparing runs).
    pub fn deterministic(&self) -> Self {
        Self {
            rollout_steps_per_s: 0.0,
            update_samples_per_s: 0.0,
            seconds: 0.0,
            ..self.clone()
        }
    }
}

const CSV_HEADER: &str = "iteration,env_steps,episodes,success,mean_return,mean_length,lr,policy_loss,value_loss,entropy,approx_kl,clip_frac,ref_kl,grad_norm,samples,rollout_steps_per_s,update_samples_per_s,seconds";

fn csv_row(m: &IterationMetrics) -> String {
    let u = &m.update;
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{:.1},{:.3}",
        m.iteration,
        m.env_steps,
        m.episodes,
        m.success,
        m.mean_return,
        m.mean_length,
        m.lr,
        u.policy_loss,
        u.value_loss,
        u.entropy,
        u.approx_kl,
        u.clip_frac,
        u.ref_kl,
        u.grad_norm,
        m.samples,
        m.rollout_steps_per_s,
        m.update_samples_per_s,
        m.seconds
    )
}

/// Appends iteration metrics to `DIR/metrics.jsonl` and `DIR/metrics.csv`.
pub struct MetricsLog {
    jsonl: PathBuf,
    csv: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PolicyError + '_ {
    move |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `text` to a temporary file beside `path`, syncs it and renames it over `path`.
fn replace(path: &Path, text: &str) -> Result<(), PolicyError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

impl MetricsLog {
    /// Opens the run's metrics in `dir`, keeping rows up to `keep_through` iterations (rows past a
    /// resumed checkpoint are dropped, since the run redoes them; a last line torn by a kill
    /// during an append is dropped too) and rewriting the CSV from them. The kept rows are
    /// written beside the old files and renamed over them, so a kill while resuming loses none.
    pub fn open(dir: &Path, keep_through: usize) -> Result<Self, PolicyError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let jsonl = dir.join("metrics.jsonl");
        let csv = dir.join("metrics.csv");
        let mut kept = vec![];
        if keep_through > 0 && jsonl.exists() {
            let text = fs::read_to_string(&jsonl).map_err(io(&jsonl))?;
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let m: IterationMetrics = match serde_json::from_str(line) {
                    Ok(m) => m,
                    // the last row, cut by a kill while it was appended
                    Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
                    Err(e) => {
                        return Err(PolicyError::Metrics {
                            path: jsonl.clone(),
                            line: i + 1,
                            why: e.to_string(),
                        });
                    }
                };
                if m.iteration <= keep_through {
                    kept.push((line.to_string(), m));
                }
            }
        }
        // kept rows are written back as they were read (a parse and re-print could change
        // the last digit of a float, and resumed metrics must equal uninterrupted ones)
        let mut j_text = String::new();
        let mut c_text = format!("{CSV_HEADER}\n");
        for (line, m) in &kept {
            j_text.push_str(line);
            j_text.push('\n');
            c_text.push_str(&csv_row(m));
            c_text.push('\n');
        }
        replace(&jsonl, &j_text)?;
        replace(&csv, &c_text)?;
        Ok(Self { jsonl, csv })
    }

    /// Appends one iteration.
    pub fn append(&mut self, m: &IterationMetrics) -> Result<(), PolicyError> {
        let mut j = OpenOptions::new()
            .append(true)
            .open(&self.jsonl)
            .map_err(io(&self.jsonl))?;
        writeln!(
            j,
            "{}",
            serde_json::to_string(m).expect("metrics serialise")
        )
        .map_err(io(&self.jsonl))?;
        let mut c = OpenOptions::new()
            .append(true)
            .open(&self.csv)
            .map_err(io(&self.csv))?;
        writeln!(c, "{}", csv_row(m)).map_err(io(&self.csv))?;
        Ok(())
    }

    /// Reads every row of a metrics JSONL file.
    pub fn read(path: &Path) -> Result<Vec<IterationMetrics>, PolicyError> {
        let f = File::open(path).map_err(io(path))?;
        BufReader::new(f)
            .lines()
            .enumerate()
            .map(|(i, line)| {
                let line = line.map_err(io(path))?;
                serde_json::from_str(&line).map_err(|e| PolicyError::Metrics {
                    path: path.to_path_buf(),
                    line: i + 1,
                    why: e.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_keeps_every_kept_row_to_the_last_bit() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path(), 0).unwrap();
        // the s2r learning rate of the default run (2.5e-4 * 0.3) annealed: its shortest
        // decimal form read back through serde_json without `float_roundtrip` was off by one ulp
        let tricky = [
            2.5e-4 * 0.3 * 0.5625,
            0.1 + 0.2,
            1.0 / 3.0,
            7.0e-310,
            f64::MAX,
        ];
        for (i, lr) in tricky.iter().enumerate() {
            log.append(&IterationMetrics {
                iteration: i + 1,
                lr: *lr,
                ..Default::default()
            })
            .unwrap();
        }
        let path = dir.path().join("metrics.jsonl");
        let before = fs::read_to_string(&path).unwrap();
        MetricsLog::open(dir.path(), tricky.len()).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), before);
        let rows = MetricsLog::read(&path).unwrap();
        for (m, lr) in rows.iter().zip(tricky) {
            assert_eq!(
                m.lr.to_bits(),
                lr.to_bits(),
                "{lr:e} read back as {:e}",
                m.lr
            );
        }
    }

    /// A new metrics log in `dir` with rows for iterations 1..=n.
    fn log_of_iterations(dir: &Path, n: usize) -> MetricsLog {
        let mut log = MetricsLog::open(dir, 0).unwrap();
        for i in 1..=n {
            log.append(&IterationMetrics {
                iteration: i,
                ..Default::default()
            })
            .unwrap();
        }
        log
    }

    #[test]
    fn resume_drops_rows_past_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        log_of_iterations(dir.path(), 3);
        MetricsLog::open(dir.path(), 2).unwrap();
        let rows = MetricsLog::read(&dir.path().join("metrics.jsonl")).unwrap();
        assert_eq!(
            rows.iter().map(|m| m.iteration).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let csv = fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3, "header + 2 rows");
        fs::write(
            dir.path().join("metrics.jsonl"),
            "{\"iteration\":1}\nnot json\n",
        )
        .unwrap();
        let err = MetricsLog::open(dir.path(), 5).err().unwrap().to_string();
        assert!(
            err.contains("metrics.jsonl") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn a_row_torn_by_a_kill_is_dropped_and_rewrites_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        log_of_iterations(dir.path(), 3);
        let path = dir.path().join("metrics.jsonl");
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str("{\"iteration\":4,\"env_st");
        fs::write(&path, text).unwrap();
        MetricsLog::open(dir.path(), 9).unwrap();
        let rows = MetricsLog::read(&path).unwrap();
        assert_eq!(rows.len(), 3);
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
