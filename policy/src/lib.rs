//! `dreamgym-policy`: the burn policy learner. A text policy over any [`dreamgym_sim::Env`]
//! (bag-of-words encoders of the instruction, state lines and each admissible action, a masked
//! scorer over a variable number of actions, and a critic), PPO and GRPO, backend selection
//! (wgpu with a CPU fallback), atomic checkpoints with exact resume, and per-iteration metrics.

pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod grpo;
pub mod loss;
pub mod metrics;
pub mod net;
pub mod ppo;
pub mod rollout;
pub mod shape;
pub mod state;
pub mod text;
pub mod trainer;

pub use backend::{BackendChoice, BackendKind, SelectedDevice, select_device};
pub use checkpoint::{checkpoint_config, checkpoint_extra};
pub use config::{Algo, OptimizerConfig, TrainConfig};
pub use metrics::{IterationMetrics, MetricsLog};
pub use net::{NativeNet, PolicyNet};
pub use rollout::{Split, TaskSampler};
pub use shape::NetShape;
pub use state::{Counters, RngState};
pub use text::{Featurizer, Vocab};
pub use trainer::{EvalReport, Trainer, evaluate_policy, vocab_from_env};

use std::path::PathBuf;

/// Errors of the policy learner.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The environment failed.
    #[error(transparent)]
    Env(#[from] dreamgym_sim::EnvError),
    /// An observation offered no admissible action.
    #[error("{env}: the observation lists no admissible actions; the policy cannot act")]
    NoActions {
        /// Env id.
        env: String,
    },
    /// No instance of the requested split was found.
    #[error("{env}: no task instance of the {split} split found after many resets")]
    NoInstance {
        /// Env id.
        env: String,
        /// Split name.
        split: String,
    },
    /// A non-finite loss or gradient; the update was abandoned.
    #[error(
        "non-finite {what} ({value}); the update was abandoned and the last good checkpoint kept"
    )]
    NonFinite {
        /// What was not finite.
        what: String,
        /// Its value.
        value: f32,
    },
    /// Invalid configuration.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// A checkpoint is damaged.
    #[error("checkpoint {path}: corrupted or truncated: {why}")]
    CorruptCheckpoint {
        /// File.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A checkpoint does not fit this run.
    #[error(
        "checkpoint {path}: mismatched {what}: the checkpoint has {checkpoint}, this run has {run}"
    )]
    MismatchedCheckpoint {
        /// File.
        path: PathBuf,
        /// What differs.
        what: String,
        /// The checkpoint's value.
        checkpoint: String,
        /// This run's value.
        run: String,
    },
    /// burn could not encode or decode a record.
    #[error("checkpoint {path}: model or optimizer record: {why}")]
    Record {
        /// File.
        path: PathBuf,
        /// burn's message.
        why: String,
    },
    /// A metrics file line is unreadable.
    #[error("{path}: line {line}: {why}")]
    Metrics {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
