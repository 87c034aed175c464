//! `dreamgym-policy`: the burn policy learner (text policy, PPO, GRPO, wgpu with CPU fallback,
//! checkpoints).
//!
//! Not built yet: this crate is reserved by the workspace layout (see `DESIGN.md`) and is filled
//! in by the issue "Policy learner on burn: text policy, PPO and GRPO, wgpu with CPU fallback,
//! checkpoints". It exports nothing, so nothing can depend on an unfinished API.
