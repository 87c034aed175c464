//! `dreamgym-buffer`: experience records, the JSONL interchange format, the durable replay buffer
//! and retrieval of similar transitions.

pub mod adp;
pub mod appender;
pub mod embed;
pub mod index;
pub mod jsonl;
pub mod log;
pub mod records;
pub mod replay;

pub use appender::BufferAppender;
pub use embed::{Embedder, HashedNgramEmbedder, transition_text};
pub use index::{ApproxIndex, ApproxParams, ExactIndex, Hit};
pub use jsonl::{FORMAT_VERSION, JsonlError, JsonlWriter};
pub use log::{DurableLog, FsyncPolicy, LogError, Recovery, RepairReport, TailRule};
pub use records::{
    Observation, Outcome, Provenance, Step, Task, TaskOrigin, Trajectory, is_success,
};
pub use replay::{
    BufferConfig, BufferError, BufferRecord, BufferStats, CapacityOnOpen, EpisodeMeta, ReplayBuffer,
};
