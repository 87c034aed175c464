//! The drivers, one per command (DreamerV3's `embodied/run/` split): `run` (the whole
//! comparison over seeds), `train` (one checkpointed DreamGym run), `efficiency` (the real
//! interactions saved, with `jobs` running its seeds in processes of their own); the methods
//! they compare as data (`methods`), the saving factor (`saving`) and the statistics (`stats`).

pub mod efficiency;
pub mod jobs;
pub mod methods;
pub mod run;
pub mod saving;
pub mod stats;
pub mod train;
