//! Environment ids (`scenario:PATH`) to environments.

use anyhow::{Context, Result, bail};
use dreamgym_sim::{ScenarioEnv, World};
use std::path::Path;
use std::sync::Arc;

/// Open the environment named by an env id. Supported: `scenario:PATH` (a bare path to a `.ron`
/// file is accepted too).
pub fn open_env(id: &str) -> Result<ScenarioEnv> {
    let path = match id.strip_prefix("scenario:") {
        Some(p) => p,
        None if id.ends_with(".ron") => id,
        None if id.starts_with("bridge:") => {
            bail!("`{id}`: bridged environments are not available in this build yet")
        }
        None => bail!("unknown env id `{id}`: expected scenario:PATH.ron"),
    };
    let world = World::load(Path::new(path))?;
    Ok(ScenarioEnv::new(
        Arc::new(world),
        format!("scenario:{path}"),
    ))
}

/// Load a compiled world, with context.
pub fn load_world(path: &Path) -> Result<World> {
    World::load(path).context("invalid scenario")
}
