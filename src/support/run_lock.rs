//! One process per run directory: `dreamgym train`, `policy train` and `run` hold an exclusive
//! advisory lock on `OUT/.dreamgym.lock` while they work. Two processes on one directory would
//! interleave checkpoints and metrics rows (duplicated iterations, a confusing error in one of
//! them); the second is refused at once instead. The lock goes with the process, kill -9
//! included, so no stale lock is ever left to clean up.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::path::Path;

/// The name of the lock file inside a run directory.
pub const LOCK_FILE: &str = ".dreamgym.lock";

/// Held while a process works in a run directory; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of `dir` (creating the directory), or says which directory is busy.
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} is in use by another dreamgym process (it holds {}); wait for it or give another --out",
                dir.display(),
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_goes() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another dreamgym process"), "{err}");
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }
}
