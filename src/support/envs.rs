//! Environment ids to environments.
//!
//! * `scenario:PATH.ron` (or a bare `PATH.ron`): the scenario engine.
//! * `bridge:NAME`: the shipped Python bridge serving `NAME` (`BabyAI-GoToLocal-v0`,
//!   `twx:coin:numLocations=5,includeDoors=1`, ...), run by `$DREAMGYM_PYTHON`, else the venv made
//!   by `scripts/setup-venv.sh` in `$DREAMGYM_CACHE` (default `~/.cache/dreamgym`), else `python3`.
//! * `bridge:NAME` with a bridge command (`--bridge-cmd "<command line>"`): any program that speaks
//!   the protocol of `docs/bridge.md`, sent `NAME` in every reset.

use anyhow::{Context, Result, bail};
use dreamgym_sim::{BridgeConfig, BridgeEnv, Env, ScenarioEnv, World};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The cache directory for the venv and the bridge script.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DREAMGYM_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("dreamgym")
}

/// The env id a command's ENV argument names: `scenario:PATH` and `bridge:NAME` as given, and
/// anything else (a scenario file) as `scenario:ENV`.
pub fn env_id_of(arg: &str) -> String {
    if arg.starts_with("scenario:") || arg.starts_with("bridge:") {
        arg.to_string()
    } else {
        format!("scenario:{arg}")
    }
}

/// The Python that runs the shipped bridge.
pub fn bridge_python() -> String {
    if let Ok(p) = std::env::var("DREAMGYM_PYTHON") {
        return p;
    }
    let venv = cache_dir().join("venv/bin/python");
    if venv.exists() {
        return venv.display().to_string();
    }
    "python3".into()
}

/// Something that opens fresh instances of one environment (one per parallel worker).
pub struct EnvFactory {
    id: String,
    kind: Kind,
}

enum Kind {
    Scenario(Arc<World>, String),
    Bridge(String, BridgeConfig),
}

impl EnvFactory {
    /// Parse an env id (and an optional bridge command for `bridge:` ids).
    pub fn new(id: &str, bridge_cmd: Option<&str>) -> Result<Self> {
        let kind = if let Some(name) = id.strip_prefix("bridge:") {
            if name.is_empty() {
                bail!("`{id}`: expected bridge:NAME, e.g. bridge:BabyAI-GoToLocal-v0");
            }
            let cfg = match bridge_cmd {
                Some(cmd) => BridgeConfig::shell(cmd),
                None => BridgeConfig::python(&bridge_python(), &cache_dir().join("bridge"))
                    .context("writing the bridge script to the cache")?,
            };
            Kind::Bridge(name.to_string(), cfg)
        } else {
            if bridge_cmd.is_some() {
                bail!("--bridge-cmd only applies to bridge:NAME env ids, not `{id}`");
            }
            let path = match id.strip_prefix("scenario:") {
                Some(p) => p,
                None if id.ends_with(".ron") => id,
                None => bail!("unknown env id `{id}`: expected scenario:PATH.ron or bridge:NAME"),
            };
            let world = load_world(Path::new(path))?;
            Kind::Scenario(Arc::new(world), format!("scenario:{path}"))
        };
        Ok(Self {
            id: id.to_string(),
            kind,
        })
    }

    /// Whether the env is bridged (its steps wait on a child process).
    pub fn is_bridge(&self) -> bool {
        matches!(self.kind, Kind::Bridge(..))
    }

    /// The env id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Refuse offline data that does not come from this env: trajectories of another scenario
    /// (or bridged env) would teach the experience model a different world while the run
    /// trains and evaluates in this one. A scenario's trajectories are recognised by their task
    /// ids (`WORLD/TEMPLATE/...`, whatever path the scenario was loaded from), a bridged env's by
    /// their env id. The error names the file and the line of the first stranger.
    pub fn check_offline(&self, path: &Path, data: &[dreamgym_buffer::Trajectory]) -> Result<()> {
        let belongs = |t: &dreamgym_buffer::Trajectory| match &self.kind {
            Kind::Scenario(w, _) => {
                t.env_id.starts_with("scenario:")
                    && t.task.id.split('/').next() == Some(w.name.as_str())
            }
            Kind::Bridge(..) => t.env_id == self.id,
        };
        let Some(i) = data.iter().position(|t| !belongs(t)) else {
            return Ok(());
        };
        // the line of the i-th trajectory (blank lines hold none)
        let line = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| {
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .nth(i)
                    .map(|(n, _)| n + 1)
            })
            .unwrap_or(i + 1);
        let t = &data[i];
        let ours = match &self.kind {
            Kind::Scenario(w, _) => format!("scenario `{}` ({})", w.name, self.id),
            Kind::Bridge(..) => format!("`{}`", self.id),
        };
        bail!(
            "{}:{line}: this trajectory comes from env `{}` (task `{}`), not from {ours} that the run trains in; give offline data of this env (e.g. `dreamgym collect --env {}`)",
            path.display(),
            t.env_id,
            t.task.id,
            self.id
        )
    }

    /// A fresh scenario env when this id names a scenario (curricula need its levels).
    pub fn scenario(&self) -> Option<ScenarioEnv> {
        match &self.kind {
            Kind::Scenario(w, id) => Some(ScenarioEnv::new(w.clone(), id.clone())),
            Kind::Bridge(..) => None,
        }
    }

    /// A fresh environment.
    pub fn open(&self) -> Box<dyn Env> {
        match &self.kind {
            Kind::Scenario(w, id) => Box::new(ScenarioEnv::new(w.clone(), id.clone())),
            Kind::Bridge(name, cfg) => {
                Box::new(BridgeEnv::new(self.id.clone(), name.clone(), cfg.clone()))
            }
        }
    }
}

/// Open the scenario named by `scenario:PATH` (or a bare path).
pub fn open_scenario(id: &str) -> Result<ScenarioEnv> {
    let path = id.strip_prefix("scenario:").unwrap_or(id);
    let world = load_world(Path::new(path))?;
    Ok(ScenarioEnv::new(
        Arc::new(world),
        format!("scenario:{path}"),
    ))
}

/// Load a compiled world, with context.
pub fn load_world(path: &Path) -> Result<World> {
    World::load(path).context("invalid scenario")
}
