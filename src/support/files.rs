//! Small file operations the commands share: replacing a file whole, telling whether two paths
//! are one file, and opening a buffer log that must already exist.

use anyhow::{Context, Result, bail};
use dreamgym_buffer::{BufferConfig, ReplayBuffer};
use std::io::Write;
use std::path::Path;

/// Writes `text` to a temporary file beside `path`, syncs it and renames it over `path`, so a
/// kill while writing leaves the old version whole, never a half-written file.
pub fn replace_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Whether two existing paths name the same file: the same device and inode, so symbolic links,
/// hard links and `./` spellings all count; false when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Refuses an output path that is (or links to, or is a hard link of) one of the `inputs`
/// (each named by its flag for the error): writing it would destroy what is being read.
pub fn refuse_output_over_input(
    command: &str,
    (out_flag, out): (&str, &Path),
    inputs: &[(&str, &Path)],
) -> Result<()> {
    for (flag, input) in inputs {
        if out == *input || same_file(out, input) {
            anyhow::bail!(
                "{command}: {out_flag} {} is the same file as {flag} {}: writing it would destroy what is read; give another output file",
                out.display(),
                input.display()
            );
        }
    }
    Ok(())
}

/// Opens the buffer log at `path` as it was logged, with `capacity` where the log records
/// none, and what recovery found; a path with no log is an error (reading commands must never
/// create an empty buffer at a mistyped path).
pub fn open_existing_buffer(
    path: &std::path::Path,
    capacity: usize,
) -> Result<(ReplayBuffer, dreamgym_buffer::Recovery)> {
    if !path.exists() {
        bail!("{}: no such buffer", path.display());
    }
    // an empty file is not a buffer: opening it would write a log header into it
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        bail!(
            "{}: an empty file, not a buffer log (expected a file written by dreamgym, starting with DGBUFLOG)",
            path.display()
        );
    }
    let cfg = BufferConfig {
        capacity,
        ..Default::default()
    };
    ReplayBuffer::open_as_logged(path, cfg)
        .with_context(|| format!("opening buffer {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::{refuse_output_over_input, same_file};

    #[test]
    fn hard_and_symbolic_links_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.dglog");
        std::fs::write(&a, b"x").unwrap();
        let hard = dir.path().join("hard");
        std::fs::hard_link(&a, &hard).unwrap();
        let soft = dir.path().join("soft");
        std::os::unix::fs::symlink(&a, &soft).unwrap();
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").unwrap();
        assert!(same_file(&a, &hard) && same_file(&a, &soft) && same_file(&hard, &soft));
        assert!(!same_file(&a, &other));
        assert!(!same_file(&a, &dir.path().join("missing")));
        let e = refuse_output_over_input("buffer export", ("OUT", &hard), &[("BUFFER", &a)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("same file as BUFFER"), "{e}");
        assert!(refuse_output_over_input("x", ("--out", &other), &[("IN", &a)]).is_ok());
    }
}
