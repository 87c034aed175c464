//! The Python of the test venv (`scripts/setup-venv.sh`: minigrid, textworld-express,
//! openenv-core), for the integration tests that drive real Python code (included by path).

/// `$DREAMGYM_PYTHON`, else the venv's python in the cache; panics with what to run when
/// neither exists.
pub fn python() -> String {
    if let Ok(p) = std::env::var("DREAMGYM_PYTHON") {
        return p;
    }
    let venv = dreamgym::support::envs::cache_dir().join("venv/bin/python");
    assert!(
        venv.exists(),
        "no test venv (minigrid, textworld-express, openenv-core): run `bash scripts/setup-venv.sh` (or scripts/test.sh), or set DREAMGYM_PYTHON"
    );
    venv.display().to_string()
}
