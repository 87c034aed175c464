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

/// Whether two existing paths name the same file (links and `./` spellings included); false
/// when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}
