//! What one seed of a run trains with, in the order a run uses it: the config, the offline seed
//! data, the seed's context (vocabulary, experience models, evaluation, recording), the
//! curriculum's task families, the DreamGym loop in the experience model, and training in the
//! real env (real-only and sim-to-real); the checkpointed iteration both resumable commands share.

pub mod checkpointed;
pub mod config;
pub mod context;
pub mod families;
pub mod offline;
pub mod offline_file;
pub mod real;
pub mod synthetic;
pub mod validation;
