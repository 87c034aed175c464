//! `dreamgym-curriculum`: the curriculum task generator (task pool with per-task group outcomes,
//! reward-variance seed selection `V = p(1-p)`, harder variants through scenario difficulty knobs,
//! and the `lambda` cap on generated tasks per batch).
//!
//! Not built yet: this crate is reserved by the workspace layout (see `DESIGN.md`) and is filled
//! in by the issue "The DreamGym loop: curriculum, synthetic training, sim-to-real, and the report".
//! It exports nothing, so nothing can depend on an unfinished API.
