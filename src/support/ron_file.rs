//! Reading settings files in RON, with errors that name the file, line and column and say what
//! was expected.

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Parses `path` as a `T`; `expected` describes a `T` for the error message.
pub fn load<T: DeserializeOwned>(path: &Path, expected: &str) -> Result<T> {
    let text = read(path)?;
    parse(&text, path, expected)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn parse<T: DeserializeOwned>(text: &str, path: &Path, expected: &str) -> Result<T> {
    ron::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: {} (expected {expected})",
            path.display(),
            e.span.start.line,
            e.span.start.col,
            e.code
        )
    })
}

/// A setting outside its allowed range: the field (a path such as `offline_mix.noise`), its
/// value and what is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeError {
    /// The field, as a path.
    pub field: String,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

impl std::fmt::Display for RangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is {}: expected {}",
            self.field, self.value, self.allowed
        )
    }
}

/// Loads `path` as a `T` and checks it with `validate`; a value out of range is reported at the
/// line and column where the file sets that field (the last name of the field's path, as
/// `noise:`), or at the file when the value came from the defaults.
pub fn load_checked<T: DeserializeOwned>(
    path: &Path,
    expected: &str,
    validate: impl Fn(&T) -> std::result::Result<(), RangeError>,
) -> Result<T> {
    let text = read(path)?;
    let value: T = parse(&text, path, expected)?;
    if let Err(e) = validate(&value) {
        let name = e.field.rsplit('.').next().unwrap_or(&e.field);
        return Err(match locate_field(&text, name) {
            Some((line, col)) => anyhow::anyhow!("{}:{line}:{col}: {e}", path.display()),
            None => anyhow::anyhow!(
                "{}: {e} (the value comes from the defaults)",
                path.display()
            ),
        });
    }
    Ok(value)
}

/// The 1-based line and column of the first `name:` in RON `text` that is a field name (not
/// inside a string or a comment).
pub fn locate_field(text: &str, name: &str) -> Option<(usize, usize)> {
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or(line);
        let mut in_str = false;
        for (col, _) in code.char_indices() {
            let rest = &code[col..];
            if rest.starts_with('"') {
                in_str = !in_str;
            }
            if in_str {
                continue;
            }
            let boundary = code[..col]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            if boundary
                && let Some(after) = rest.strip_prefix(name)
                && after.trim_start().starts_with(':')
            {
                return Some((i + 1, col + 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_located_outside_strings_and_comments() {
        let text = "(\n  // noise: not here\n  name: \"noise: nor here\",\n  offline_mix: (noise: 1.5),\n)";
        assert_eq!(locate_field(text, "noise"), Some((4, 17)));
        assert_eq!(locate_field(text, "offline_mix"), Some((4, 3)));
        assert_eq!(locate_field(text, "seeds"), None);
        assert_eq!(locate_field("(my_noise: 1)", "noise"), None);
    }
}
