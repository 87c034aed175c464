//! Reading ADP files: one trajectory per line (JSONL) or one JSON array, each record located
//! at its line for errors.

use super::*;

/// One ADP trajectory of a file, with the line it starts on.
pub(super) struct Located {
    pub(super) line: usize,
    pub(super) value: Result<Value, AdpError>,
}

/// Reads an ADP file (JSONL, or one JSON array) into dreamgym trajectories. The first invalid
/// trajectory stops the read with a located error, unless `skip_invalid`, which counts it in the
/// report and goes on. Nothing of a refused trajectory is returned.
pub fn read_file(
    path: &Path,
    opts: &ImportOptions,
    skip_invalid: bool,
) -> Result<(Vec<Trajectory>, ImportReport), AdpError> {
    let text = std::fs::read_to_string(path).map_err(|source| AdpError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut out = vec![];
    let mut report = ImportReport::default();
    for item in split_records(text, path)? {
        let located = |e: FieldError, id: &str| AdpError::Invalid {
            path: path.to_path_buf(),
            line: item.line,
            id: id.to_string(),
            field: e.field,
            message: e.message,
        };
        let value = match item.value {
            Ok(v) => v,
            Err(e) if skip_invalid => {
                report.skipped.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        // an ADP trajectory without one action and its observation makes no transition: it
        // would be counted here and lost in any buffer or export after
        let converted = convert(&value, opts).and_then(|(t, dropped)| {
            if t.steps.is_empty() {
                Err(FieldError {
                    field: "content".into(),
                    message: "no action followed by an observation: a trajectory needs at least one transition".into(),
                })
            } else {
                Ok((t, dropped))
            }
        });
        match converted {
            Ok((t, dropped)) => {
                report.trajectories += 1;
                report.transitions += t.steps.len();
                report.unknown_reward_steps += t.steps.iter().filter(|s| !s.reward_known).count();
                report.boilerplate_dropped += dropped as usize;
                out.push(t);
            }
            Err(e) if skip_invalid => report.skipped.push(located(e, &id).to_string()),
            Err(e) => return Err(located(e, &id)),
        }
    }
    Ok((out, report))
}

/// The records of a file: a JSON array's elements, or one value per non-blank line.
pub(super) fn split_records(text: &str, path: &Path) -> Result<Vec<Located>, AdpError> {
    let syntax = |line: usize, column: usize, message: String| AdpError::Syntax {
        path: path.to_path_buf(),
        line,
        column,
        message,
    };
    if text.trim_start().starts_with('[') {
        let all: Value = serde_json::from_str(text).map_err(|e| {
            syntax(
                e.line(),
                e.column().max(1),
                format!("expected a JSON array of ADP trajectories: {e}"),
            )
        })?;
        let starts = array_element_lines(text);
        let items = all.as_array().cloned().unwrap_or_default();
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, value)| Located {
                line: starts.get(i).copied().unwrap_or(1),
                value: Ok(value),
            })
            .collect());
    }
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Located {
            line: i + 1,
            value: serde_json::from_str::<Value>(l).map_err(|e| {
                syntax(
                    i + 1,
                    e.column().max(1),
                    format!("expected one ADP trajectory (a JSON object) per line: {e}"),
                )
            }),
        })
        .collect())
}

/// The 1-based line on which each top-level element of a (valid) JSON array starts.
pub(super) fn array_element_lines(text: &str) -> Vec<usize> {
    let (mut line, mut depth, mut in_str, mut escaped) = (1usize, 0usize, false, false);
    let mut expecting = false;
    let mut out = vec![];
    for c in text.chars() {
        if c == '\n' {
            line += 1;
        }
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        if expecting && !c.is_whitespace() && c != ']' {
            out.push(line);
            expecting = false;
        }
        match c {
            '"' => in_str = true,
            '[' | '{' => {
                depth += 1;
                if depth == 1 {
                    expecting = true;
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => expecting = true,
            _ => {}
        }
    }
    out
}
