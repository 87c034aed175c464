//! Small file operations the commands share: replacing a file whole, and telling whether two
//! paths are one file.

use anyhow::{Context, Result};
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
