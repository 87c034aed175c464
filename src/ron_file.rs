//! Reading settings files in RON, with errors that name the file, line and column and say what
//! was expected.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Parses `path` as a `T`; `expected` describes a `T` for the error message.
pub fn load<T: DeserializeOwned>(path: &Path, expected: &str) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    ron::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: {} (expected {expected})",
            path.display(),
            e.span.start.line,
            e.span.start.col,
            e.code
        )
    })
}
