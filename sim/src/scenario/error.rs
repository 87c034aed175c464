//! Located errors for scenario files: every error names `file:line:col` and what was expected.

use std::path::{Path, PathBuf};

/// An error in a scenario file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", file.display())]
pub struct ScenarioError {
    /// The scenario file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Finds where things are in the source text, to locate errors found after parsing.
///
/// RON deserialisation keeps no spans, so a semantic error is located by searching the source for
/// the quoted string it concerns, after the quoted anchors that lead to it (e.g. the action's name).
pub struct Locator<'a> {
    file: &'a Path,
    src: &'a str,
}

impl<'a> Locator<'a> {
    /// A locator over `src`, the text of `file`.
    pub fn new(file: &'a Path, src: &'a str) -> Self {
        Self { file, src }
    }

    fn find_quoted(&self, from: usize, text: &str) -> Option<usize> {
        let pat = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
        self.src[from..].find(&pat).map(|i| from + i + 1)
    }

    /// Byte offset of `needle` (quoted in the source) after the quoted `anchors` in order, plus
    /// `offset` bytes into it; then of `needle` unquoted after the anchors (a keyword such as
    /// `OneOf`); falls back to the last anchor found, then to the start.
    pub fn offset_of(&self, anchors: &[&str], needle: &str, offset: usize) -> usize {
        let mut pos = 0;
        let mut found_anchor = None;
        for a in anchors {
            if let Some(p) = self.find_quoted(pos, a) {
                pos = p;
                found_anchor = Some(p);
            }
        }
        match self
            .find_quoted(pos, needle)
            .or_else(|| self.find_quoted(0, needle))
            .or_else(|| self.src[pos..].find(needle).map(|i| pos + i))
        {
            Some(p) => p + offset.min(needle.len()),
            None => found_anchor.unwrap_or(0),
        }
    }

    /// An error at byte `offset` of the source.
    pub fn error_at(&self, offset: usize, message: impl Into<String>) -> ScenarioError {
        let before = &self.src[..offset.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ScenarioError {
            file: self.file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// An error at `needle` (see [`offset_of`](Self::offset_of)).
    pub fn error(
        &self,
        anchors: &[&str],
        needle: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> ScenarioError {
        self.error_at(self.offset_of(anchors, needle, offset), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_after_anchors() {
        let src = "A(\n  name: \"go\",\n  pre: [\"x\"],\n)\nB(name: \"take\", pre: [\"x\"])";
        let l = Locator::new(Path::new("f.ron"), src);
        let e = l.error(&["take"], "x", 0, "bad");
        assert_eq!((e.line, e.col), (5, 24));
        let e = l.error(&["go"], "x", 0, "bad");
        assert_eq!((e.line, e.col), (3, 10));
        assert_eq!(e.to_string(), "f.ron:3:10: bad");
        let e = l.error(&["go"], "missing", 0, "bad");
        assert_eq!((e.line, e.col), (2, 10));
    }
}
