//! The Agent Data Protocol (ADP; neulab/agent-data-protocol, arXiv 2510.24702): standardized agent
//! trajectories in, dreamgym trajectories out, and back.
//!
//! The contract (the mapping is documented in `docs/formats.md`, "Agent Data Protocol"):
//! - Input is one ADP trajectory per line (JSONL) or one JSON array of them (as ADP's
//!   `sample_std.json` files are); schema versions 1.0 to 1.5, with the spellings that differ
//!   between them (`class_` in snake or Camel case; `source` as `user`/`user_msg`,
//!   `environment`/`env`/`tool`, `agent`/`assistant`, `system`).
//! - A trajectory that is not valid ADP is refused with the file, the line, the trajectory id and
//!   the field; nothing of it is produced. Numbers must be finite as f32.
//! - Rewards are never invented: a step's reward is the `reward` of its action or of the
//!   observation it produced; a step with neither has [`Step::reward_known`] `false`, and the
//!   trajectory's outcome says `success: false` only because it must say something — readers that
//!   fit rewards or count successes skip such steps and trajectories (see [`Trajectory::rewards_known`]).
//! - [`to_adp`] writes schema 1.5.0 trajectories that [`validate`] (the schema's own rules: extra
//!   fields refused, tool-call links matched) accepts, with dreamgym's admissible actions, feedback
//!   and provenance in `details.dreamgym`, so that dreamgym JSONL -> ADP -> dreamgym JSONL keeps
//!   states, actions, rewards and `done` exactly.

use crate::records::{Observation, Outcome, Provenance, Step, Task, TaskOrigin, Trajectory};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// The schema version [`to_adp`] writes.
pub const EXPORT_SCHEMA_VERSION: &str = "1.5.0";

/// The highest minor version of schema 1 this reader knows.
const MAX_MINOR: u64 = 5;

/// Text that ADP converters append as an ending although no environment said it (e.g.
/// "Task completed successfully."): with [`ImportOptions::drop_boilerplate`], a last observation
/// that is only such a sentence is not taken as the episode's final state.
pub const BOILERPLATE_ENDINGS: &[&str] = &[
    "task completed successfully",
    "task completed",
    "the task is complete",
    "well done on successfully completing the task",
    "done",
];

/// Errors of ADP import and export.
#[derive(Debug, thiserror::Error)]
pub enum AdpError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The text is not JSON, or not JSON lines.
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        /// File involved.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected.
        message: String,
    },
    /// A trajectory is not valid ADP.
    #[error("{path}:{line}: trajectory {id}: {field}: {message}")]
    Invalid {
        /// File involved.
        path: PathBuf,
        /// 1-based line where the trajectory starts.
        line: usize,
        /// The trajectory's `id` (`?` when it has none).
        id: String,
        /// The field at fault, as a path (`content[3].kwargs`).
        field: String,
        /// What was expected.
        message: String,
    },
}

/// A field-level problem inside one trajectory (located by [`read_file`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The field at fault, as a path (`content[3].source`).
    pub field: String,
    /// What was expected.
    pub message: String,
}

fn field_err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

/// How ADP trajectories become dreamgym trajectories.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportOptions {
    /// The env id the trajectories are filed under (`adp:<dataset>` by default).
    pub env_id: String,
    /// Drop a last observation that is only a converter's boilerplate ending
    /// ([`BOILERPLATE_ENDINGS`]): it is not environment evidence.
    pub drop_boilerplate: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            env_id: "adp:import".into(),
            drop_boilerplate: false,
        }
    }
}

/// What an import read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    /// Trajectories converted.
    pub trajectories: usize,
    /// Transitions in them.
    pub transitions: usize,
    /// Transitions whose reward the data did not state.
    pub unknown_reward_steps: usize,
    /// Trajectories refused (only with `skip_invalid`), with why.
    pub skipped: Vec<String>,
    /// Boilerplate endings dropped.
    pub boilerplate_dropped: usize,
}

/// One ADP trajectory of a file, with the line it starts on.
struct Located {
    line: usize,
    value: Result<Value, AdpError>,
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
        match convert(&value, opts) {
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
fn split_records(text: &str, path: &Path) -> Result<Vec<Located>, AdpError> {
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
fn array_element_lines(text: &str) -> Vec<usize> {
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

/// Who produced an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    User,
    Environment,
    Agent,
    System,
}

fn source_of(s: &str) -> Option<Source> {
    Some(match s {
        "user" | "user_msg" | "human" => Source::User,
        "environment" | "env" | "tool" | "observation" => Source::Environment,
        "agent" | "assistant" | "gpt" => Source::Agent,
        "system" => Source::System,
        _ => return None,
    })
}

/// One content item, read and checked.
#[derive(Debug, Clone)]
enum Item {
    Action {
        text: String,
        reasoning: Option<String>,
        reward: Option<f32>,
        call_id: Option<String>,
        /// A `<finish>` message: the end of the episode, not a transition.
        finish: bool,
        /// A tool action (api/code) rather than a message.
        tool: bool,
    },
    Observation {
        text: String,
        source: Source,
        reward: Option<f32>,
        call_id: Option<String>,
    },
}

/// `class_` normalised to snake case (`ApiAction` -> `api_action`).
fn class_name(raw: &str) -> String {
    let mut out = String::new();
    for (i, c) in raw.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn opt_str(o: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, FieldError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(field_err(
            format!("{at}.{key}"),
            format!("expected a string or null, found {}", kind_of(other)),
        )),
    }
}

fn req_str(o: &Map<String, Value>, key: &str, at: &str) -> Result<String, FieldError> {
    opt_str(o, key, at)?
        .ok_or_else(|| field_err(format!("{at}.{key}"), "required string is missing"))
}

fn opt_reward(o: &Map<String, Value>, at: &str) -> Result<Option<f32>, FieldError> {
    match o.get("reward") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let r = x as f32;
            if r.is_finite() {
                Ok(Some(r))
            } else {
                Err(field_err(
                    format!("{at}.reward"),
                    format!("{x} is not a finite 32-bit number"),
                ))
            }
        }
        Some(other) => Err(field_err(
            format!("{at}.reward"),
            format!("expected a number or null, found {}", kind_of(other)),
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_fields(o: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), FieldError> {
    for k in o.keys() {
        if k != "class_" && !allowed.contains(&k.as_str()) {
            return Err(field_err(
                format!("{at}.{k}"),
                format!(
                    "unknown field (expected one of: class_, {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// An api_action as action text: `act(command=X)` (dreamgym's own export) is `X`; otherwise
/// `function(key=value, ...)` with string values as given and other values as JSON.
fn render_api(function: &str, kwargs: &Map<String, Value>) -> String {
    if function == "act"
        && kwargs.len() == 1
        && let Some(Value::String(c)) = kwargs.get("command")
    {
        return c.clone();
    }
    let args: Vec<String> = kwargs
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    format!("{function}({})", args.join(", "))
}

const ACTION_BASE: &[&str] = &["reasoning_content", "reward", "tool_call_id", "description"];
const OBS_BASE: &[&str] = &["reward", "tool_call_id"];

fn read_item(v: &Value, at: &str) -> Result<Item, FieldError> {
    let o = v
        .as_object()
        .ok_or_else(|| field_err(at, format!("expected an object, found {}", kind_of(v))))?;
    let class = match o.get("class_") {
        Some(Value::String(c)) => class_name(c),
        _ => {
            return Err(field_err(
                format!("{at}.class_"),
                "required string is missing",
            ));
        }
    };
    let with = |extra: &[&'static str], base: &[&'static str]| [extra, base].concat();
    let call_id = opt_str(o, "tool_call_id", at)?;
    match class.as_str() {
        "api_action" => {
            check_fields(o, &with(&["function", "kwargs"], ACTION_BASE), at)?;
            let function = req_str(o, "function", at)?;
            let kwargs = match o.get("kwargs") {
                Some(Value::Object(k)) => k.clone(),
                Some(Value::Null) | None => Map::new(),
                Some(other) => {
                    return Err(field_err(
                        format!("{at}.kwargs"),
                        format!("expected an object, found {}", kind_of(other)),
                    ));
                }
            };
            Ok(Item::Action {
                text: render_api(&function, &kwargs),
                reasoning: reasoning_of(o, at)?,
                reward: opt_reward(o, at)?,
                call_id,
                finish: false,
                tool: true,
            })
        }
        "code_action" => {
            check_fields(o, &with(&["language", "content"], ACTION_BASE), at)?;
            let language = req_str(o, "language", at)?;
            let content = req_str(o, "content", at)?;
            Ok(Item::Action {
                text: format!("```{language}\n{content}\n```"),
                reasoning: reasoning_of(o, at)?,
                reward: opt_reward(o, at)?,
                call_id,
                finish: false,
                tool: true,
            })
        }
        "message_action" => {
            check_fields(o, &with(&["content"], ACTION_BASE), at)?;
            let content = req_str(o, "content", at)?;
            if call_id.is_some() {
                return Err(field_err(
                    format!("{at}.tool_call_id"),
                    "a message_action is not a tool call and takes no tool_call_id",
                ));
            }
            let finish = content.trim_start().starts_with("<finish>");
            Ok(Item::Action {
                text: content,
                reasoning: reasoning_of(o, at)?,
                reward: opt_reward(o, at)?,
                call_id,
                finish,
                tool: false,
            })
        }
        "text_observation" => {
            check_fields(o, &with(&["content", "source", "name"], OBS_BASE), at)?;
            let content = req_str(o, "content", at)?;
            Ok(Item::Observation {
                text: content,
                source: read_source(o, at)?,
                reward: opt_reward(o, at)?,
                call_id,
            })
        }
        "web_observation" => {
            check_fields(
                o,
                &with(
                    &[
                        "html",
                        "axtree",
                        "url",
                        "image_observation",
                        "viewport_size",
                    ],
                    OBS_BASE,
                ),
                at,
            )?;
            // the accessibility tree is the page as an agent reads it; HTML only when it is absent
            let axtree = opt_str(o, "axtree", at)?;
            let html = opt_str(o, "html", at)?;
            let url = opt_str(o, "url", at)?;
            let mut text = String::new();
            if let Some(u) = url.filter(|u| !u.is_empty()) {
                text.push_str(&format!("url: {u}\n"));
            }
            match (axtree.filter(|a| !a.trim().is_empty()), html) {
                (Some(a), _) => text.push_str(&a),
                (None, Some(h)) => text.push_str(&html_text(&h)),
                (None, None) => {}
            }
            Ok(Item::Observation {
                text,
                source: Source::Environment,
                reward: opt_reward(o, at)?,
                call_id,
            })
        }
        "image_observation" => {
            check_fields(
                o,
                &with(&["content", "source", "annotations"], OBS_BASE),
                at,
            )?;
            let content = req_str(o, "content", at)?;
            let mut text = format!("image: {content}");
            if let Some(Value::Array(anns)) = o.get("annotations") {
                for a in anns {
                    if let Some(t) = a.get("text").and_then(Value::as_str) {
                        text.push('\n');
                        text.push_str(t);
                    }
                }
            }
            Ok(Item::Observation {
                text,
                source: read_source(o, at)?,
                reward: opt_reward(o, at)?,
                call_id,
            })
        }
        other => Err(field_err(
            format!("{at}.class_"),
            format!(
                "unknown class `{other}` (expected api_action, code_action, message_action, text_observation, web_observation or image_observation)"
            ),
        )),
    }
}

fn reasoning_of(o: &Map<String, Value>, at: &str) -> Result<Option<String>, FieldError> {
    let r = opt_str(o, "reasoning_content", at)?.filter(|s| !s.trim().is_empty());
    let d = opt_str(o, "description", at)?.filter(|s| !s.trim().is_empty());
    Ok(r.or(d))
}

fn read_source(o: &Map<String, Value>, at: &str) -> Result<Source, FieldError> {
    let s = req_str(o, "source", at)?;
    source_of(&s).ok_or_else(|| {
        field_err(
            format!("{at}.source"),
            format!(
                "unknown source `{s}` (expected user, environment, agent, assistant or system)"
            ),
        )
    })
}

/// Visible text of HTML, one line per block (tags dropped, entities for &, <, > decoded).
fn html_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push('\n');
            }
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Free text as state lines: one per non-blank line, long lines cut after their sentences.
pub fn text_to_lines(text: &str, split_sentences: bool) -> Vec<String> {
    let mut out = vec![];
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !split_sentences {
            out.push(line.to_string());
            continue;
        }
        let mut start = 0;
        let bytes = line.as_bytes();
        for i in 0..bytes.len() {
            let end_of_sentence = matches!(bytes[i], b'.' | b'!' | b'?')
                && bytes.get(i + 1) == Some(&b' ')
                && bytes.get(i + 2).is_some_and(|b| b.is_ascii_uppercase());
            if end_of_sentence {
                out.push(line[start..=i].trim().to_string());
                start = i + 1;
            }
        }
        let rest = line[start..].trim();
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

fn is_boilerplate(text: &str) -> bool {
    let t = text
        .trim()
        .trim_end_matches(['.', '!'])
        .to_ascii_lowercase();
    BOILERPLATE_ENDINGS.contains(&t.as_str())
}

/// Converts one ADP trajectory (a parsed JSON value) into a dreamgym trajectory; also returns
/// whether a boilerplate ending was dropped.
pub fn convert(v: &Value, opts: &ImportOptions) -> Result<(Trajectory, bool), FieldError> {
    let o = v.as_object().ok_or_else(|| {
        field_err(
            "(trajectory)",
            format!("expected an object, found {}", kind_of(v)),
        )
    })?;
    check_fields(
        o,
        &[
            "schema_version",
            "id",
            "content",
            "details",
            "available_apis",
            "available_custom_tools",
            "available_code_languages",
        ],
        "",
    )
    .map_err(|e| field_err(e.field.trim_start_matches('.'), e.message))?;
    if let Some(ver) = o.get("schema_version") {
        let s = ver
            .as_str()
            .ok_or_else(|| field_err("schema_version", "expected a string like \"1.5.0\""))?;
        check_version(s)?;
    }
    let id = match o.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(field_err("id", "required non-empty string is missing")),
    };
    let content = match o.get("content") {
        Some(Value::Array(a)) => a,
        _ => return Err(field_err("content", "required array is missing")),
    };
    let details = match o.get("details") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(d)) => d.clone(),
        Some(other) => {
            return Err(field_err(
                "details",
                format!("expected an object, found {}", kind_of(other)),
            ));
        }
    };
    let mut params = std::collections::BTreeMap::new();
    for key in [
        "available_apis",
        "available_custom_tools",
        "available_code_languages",
    ] {
        match o.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                let names: Option<Vec<&str>> = a.iter().map(Value::as_str).collect();
                let names = names.ok_or_else(|| field_err(key, "expected an array of strings"))?;
                params.insert(key.to_string(), names.join(","));
            }
            Some(other) => {
                return Err(field_err(
                    key,
                    format!("expected an array of strings, found {}", kind_of(other)),
                ));
            }
        }
    }
    let items: Vec<Item> = content
        .iter()
        .enumerate()
        .map(|(i, v)| read_item(v, &format!("content[{i}]")))
        .collect::<Result<_, _>>()?;
    check_links(&items)?;
    let ours = details.get("dreamgym").and_then(Value::as_object);
    let (mut steps, instruction, dropped) = transitions(&items, ours, opts)?;
    let provenance = match ours
        .and_then(|d| d.get("provenance"))
        .and_then(Value::as_str)
    {
        Some("synthetic") => Provenance::Synthetic,
        _ => Provenance::Real,
    };
    for s in &mut steps {
        if s.provenance != Provenance::Synthetic {
            s.provenance = provenance;
        }
    }
    let task_params = ours
        .and_then(|d| d.get("task_params"))
        .and_then(Value::as_object);
    if let Some(tp) = task_params {
        for (k, v) in tp {
            if let Some(s) = v.as_str() {
                params.insert(k.clone(), s.to_string());
            }
        }
    }
    let stated_success = details
        .get("success")
        .and_then(Value::as_bool)
        .or_else(|| ours.and_then(|d| d.get("success")).and_then(Value::as_bool));
    let success = stated_success.unwrap_or_else(|| {
        steps
            .last()
            .is_some_and(|s| s.reward_known && crate::is_success(s.done, s.reward))
    });
    let outcome = Outcome {
        success,
        ..Trajectory::outcome_from_steps(&steps, success)
    };
    let get_u = |k: &str| ours.and_then(|d| d.get(k)).and_then(Value::as_u64);
    let get_s = |k: &str| {
        ours.and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Ok((
        Trajectory {
            task: Task {
                id: get_s("task_id").unwrap_or_else(|| id.clone()),
                instruction,
                params,
                difficulty: get_u("difficulty").unwrap_or(0) as u32,
                origin: TaskOrigin::Seed,
            },
            env_id: get_s("env_id").unwrap_or_else(|| opts.env_id.clone()),
            seed: get_u("seed").unwrap_or(0),
            provenance,
            policy: get_s("policy").unwrap_or_else(|| format!("adp:{id}")),
            steps,
            outcome,
        },
        dropped,
    ))
}

fn check_version(s: &str) -> Result<(), FieldError> {
    let parts: Vec<&str> = s.split('.').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse().ok()).collect();
    match nums.as_deref() {
        Some([1, minor, ..]) if *minor <= MAX_MINOR && parts.len() <= 3 => Ok(()),
        _ => Err(field_err(
            "schema_version",
            format!("unsupported version `{s}` (this reader knows 1.0 to 1.{MAX_MINOR})"),
        )),
    }
}

/// The schema's tool-call rules: ids unique per action, each observation's id names an earlier
/// action, no observation answers an id twice.
fn check_links(items: &[Item]) -> Result<(), FieldError> {
    let mut actions: std::collections::HashMap<&str, usize> = Default::default();
    let mut answered: std::collections::HashSet<&str> = Default::default();
    for (i, it) in items.iter().enumerate() {
        match it {
            Item::Action {
                call_id: Some(c), ..
            } => {
                if let Some(j) = actions.insert(c, i) {
                    return Err(field_err(
                        format!("content[{i}].tool_call_id"),
                        format!("duplicate tool_call_id `{c}` (also at content[{j}])"),
                    ));
                }
            }
            Item::Observation {
                call_id: Some(c), ..
            } => {
                if !actions.contains_key(c.as_str()) {
                    return Err(field_err(
                        format!("content[{i}].tool_call_id"),
                        format!("`{c}` matches no earlier action's tool_call_id"),
                    ));
                }
                if !answered.insert(c) {
                    return Err(field_err(
                        format!("content[{i}].tool_call_id"),
                        format!("a second observation for tool_call_id `{c}`"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The transitions of a trajectory's items; also the instruction and whether a boilerplate
/// ending was dropped.
fn transitions(
    items: &[Item],
    ours: Option<&Map<String, Value>>,
    opts: &ImportOptions,
) -> Result<(Vec<Step>, String, bool), FieldError> {
    // dreamgym's own export writes state lines one per text line; foreign text is split into
    // sentences too
    let split = ours
        .and_then(|d| d.get("state_lines"))
        .and_then(Value::as_str)
        != Some("newline");
    let per_step = ours
        .and_then(|d| d.get("steps"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let first_tool = items
        .iter()
        .position(|it| matches!(it, Item::Action { tool: true, .. }));
    let is_user_obs = |it: &Item| {
        matches!(
            it,
            Item::Observation {
                source: Source::User,
                ..
            }
        )
    };
    // the task: the last user observation before the first tool action (multi-turn prompts put
    // a generic preamble first), else the first user observation
    let task_at = match first_tool {
        Some(f) => items[..f].iter().rposition(is_user_obs),
        None => items.iter().position(is_user_obs),
    }
    .ok_or_else(|| {
        field_err(
            "content",
            "no user observation: the task an ADP trajectory poses is its first user message",
        )
    })?;
    let Item::Observation { text: task, .. } = &items[task_at] else {
        unreachable!("task_at is a user observation")
    };
    let instruction = ours
        .and_then(|d| d.get("instruction"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| task.trim().to_string());
    let mut state = Observation {
        lines: text_to_lines(task, split),
        instruction: instruction.clone(),
        admissible: vec![],
        feedback: String::new(),
    };
    let mut steps: Vec<Step> = vec![];
    let mut dropped = false;
    let mut i = task_at + 1;
    while i < items.len() {
        let Item::Action {
            text,
            reasoning,
            reward,
            call_id,
            finish,
            ..
        } = &items[i]
        else {
            // an observation no action asked for (a user's follow-up) becomes the state
            if let Item::Observation { text, .. } = &items[i] {
                state.lines = text_to_lines(text, split);
            }
            i += 1;
            continue;
        };
        if *finish {
            if let Some(last) = steps.last_mut() {
                last.done = true;
            }
            i += 1;
            continue;
        }
        // what came back: the observation linked by id, else those right after the action
        let mut j = i + 1;
        let mut replies: Vec<(&String, Option<f32>)> = vec![];
        while let Some(Item::Observation {
            text,
            reward,
            call_id: obs_id,
            ..
        }) = items.get(j)
        {
            if call_id.is_none() || obs_id.is_none() || obs_id == call_id {
                replies.push((text, *reward));
            }
            j += 1;
        }
        let last_item = j >= items.len()
            || items[j..]
                .iter()
                .all(|it| matches!(it, Item::Action { finish: true, .. }));
        if opts.drop_boilerplate && last_item && replies.len() == 1 && is_boilerplate(replies[0].0)
        {
            replies.clear();
            dropped = true;
        }
        let k = steps.len();
        let extra = per_step.get(k).and_then(Value::as_object);
        let mut next = state.clone();
        if !replies.is_empty() {
            next.lines = replies
                .iter()
                .flat_map(|(t, _)| text_to_lines(t, split))
                .collect();
        }
        if let Some(e) = extra {
            if let Some(Value::Array(a)) = e.get("state_admissible") {
                state.admissible = a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
            }
            if let Some(Value::Array(a)) = e.get("next_admissible") {
                next.admissible = a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
            }
            next.feedback = e
                .get("feedback")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
        } else {
            next.admissible = vec![];
            next.feedback = String::new();
        }
        let stated = reward.or_else(|| replies.iter().find_map(|(_, r)| *r));
        let flag = |k: &str| extra.and_then(|e| e.get(k)).and_then(Value::as_bool);
        steps.push(Step {
            state: state.clone(),
            action: text.clone(),
            reward: stated.unwrap_or(0.0),
            next_state: next.clone(),
            done: flag("done").unwrap_or(false),
            truncated: flag("truncated").unwrap_or(false),
            reasoning: reasoning.clone(),
            provenance: match extra
                .and_then(|e| e.get("provenance"))
                .and_then(Value::as_str)
            {
                Some("synthetic") => Provenance::Synthetic,
                _ => Provenance::Real,
            },
            reward_known: stated.is_some(),
        });
        state = next;
        i = j;
    }
    // without dreamgym's per-step flags, the trajectory's last transition ends it
    if per_step.is_empty()
        && let Some(last) = steps.last_mut()
    {
        last.done = true;
    }
    Ok((steps, instruction, dropped))
}

/// A dreamgym trajectory as an ADP 1.5.0 trajectory (see the module docs).
pub fn to_adp(t: &Trajectory, id: &str) -> Value {
    let mut content = vec![json!({
        "class_": "text_observation",
        "content": t.task.instruction,
        "source": "user",
    })];
    // the first state, even without lines: the import takes the user message before the first
    // action as the initial state
    if let Some(first) = t.steps.first() {
        content.push(json!({
            "class_": "text_observation",
            "content": first.state.lines.join("\n"),
            "source": "user",
        }));
    }
    let mut per_step = vec![];
    for (k, s) in t.steps.iter().enumerate() {
        let call = format!("call_{:06}", k + 1);
        let mut action = json!({
            "class_": "api_action",
            "function": "act",
            "kwargs": {"command": s.action},
            "tool_call_id": call,
        });
        if let Some(r) = &s.reasoning {
            action["reasoning_content"] = json!(r);
        }
        if s.reward_known {
            action["reward"] = json!(s.reward);
        }
        content.push(action);
        // ADP text has no empty-state form: a state without lines is an empty string
        content.push(json!({
            "class_": "text_observation",
            "content": s.next_state.lines.join("\n"),
            "source": "environment",
            "tool_call_id": call,
        }));
        per_step.push(json!({
            "state_admissible": s.state.admissible,
            "next_admissible": s.next_state.admissible,
            "feedback": s.next_state.feedback,
            "done": s.done,
            "truncated": s.truncated,
            "provenance": s.provenance.to_string(),
        }));
    }
    if t.steps.last().is_some_and(|s| s.done) {
        content.push(json!({
            "class_": "message_action",
            "content": "<finish> </finish>",
        }));
    }
    json!({
        "schema_version": EXPORT_SCHEMA_VERSION,
        "id": id,
        "content": content,
        "details": {
            "dreamgym": {
                "state_lines": "newline",
                "instruction": t.task.instruction,
                "task_id": t.task.id,
                "task_params": t.task.params,
                "difficulty": t.task.difficulty,
                "env_id": t.env_id,
                "seed": t.seed,
                "policy": t.policy,
                "provenance": t.provenance.to_string(),
                "success": t.outcome.success,
                "total_reward": t.outcome.total_reward,
                "steps": per_step,
            }
        }
    })
}

/// Checks a trajectory against the ADP schema's own rules (what its pydantic models enforce):
/// known fields only, required fields present with their types, `source` spellings of 1.5,
/// finite rewards, and matched tool-call links.
pub fn validate(v: &Value) -> Result<(), FieldError> {
    let o = v
        .as_object()
        .ok_or_else(|| field_err("(trajectory)", "expected an object"))?;
    if o.get("schema_version").and_then(Value::as_str) != Some(EXPORT_SCHEMA_VERSION) {
        return Err(field_err(
            "schema_version",
            format!("expected \"{EXPORT_SCHEMA_VERSION}\""),
        ));
    }
    let content = o
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| field_err("content", "required array is missing"))?;
    let items: Vec<Item> = content
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let at = format!("content[{i}]");
            let item = read_item(v, &at)?;
            // 1.5 spells sources `user`, `agent` / `assistant`, `environment`, `system`
            if let Some(s) = v.get("source").and_then(Value::as_str)
                && !["user", "agent", "assistant", "environment", "system"].contains(&s)
            {
                return Err(field_err(
                    format!("{at}.source"),
                    format!("`{s}` is not a 1.5 source"),
                ));
            }
            Ok(item)
        })
        .collect::<Result<_, _>>()?;
    check_links(&items)?;
    // a tool action followed by an observation must carry the id that links them
    for (i, w) in items.windows(2).enumerate() {
        if let [
            Item::Action {
                tool: true,
                call_id: None,
                ..
            },
            Item::Observation { .. },
        ] = w
        {
            return Err(field_err(
                format!("content[{i}].tool_call_id"),
                "a tool action followed by an observation needs a tool_call_id",
            ));
        }
    }
    for (i, it) in items.iter().enumerate() {
        if let Item::Action {
            tool: true,
            call_id: Some(c),
            ..
        } = it
            && !items
                .iter()
                .any(|o| matches!(o, Item::Observation { call_id: Some(d), .. } if d == c))
        {
            return Err(field_err(
                format!("content[{i}].tool_call_id"),
                format!("`{c}` has no matching observation"),
            ));
        }
    }
    convert(v, &ImportOptions::default()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_and_lines_become_state_lines() {
        let l = text_to_lines(
            "You open the cabinet 3. The cabinet 3 is open. In it, you see nothing.\n\n  Next line  ",
            true,
        );
        assert_eq!(
            l,
            vec![
                "You open the cabinet 3.",
                "The cabinet 3 is open.",
                "In it, you see nothing.",
                "Next line"
            ]
        );
        assert_eq!(
            text_to_lines("[a] b: one. Two", false),
            vec!["[a] b: one. Two"]
        );
    }

    #[test]
    fn array_elements_are_located_by_line() {
        let text = "[\n  {\"id\": \"a\", \"s\": \"x, {y}\"},\n\n  {\"id\": \"b\"}\n]";
        assert_eq!(array_element_lines(text), vec![2, 4]);
        assert_eq!(array_element_lines("[]"), Vec::<usize>::new());
    }

    #[test]
    fn versions_one_to_one_five_are_accepted() {
        for v in ["1.0", "1.0.0", "1.1.0", "1.2.0", "1.3.1", "1.4.0", "1.5.0"] {
            assert!(check_version(v).is_ok(), "{v}");
        }
        for v in ["2.0.0", "1.6.0", "one", "1.5.0.1"] {
            assert!(check_version(v).is_err(), "{v}");
        }
    }

    #[test]
    fn api_actions_render_as_calls_and_act_as_its_command() {
        let mut k = Map::new();
        k.insert("location".into(), json!("\"shelf 1\""));
        assert_eq!(render_api("go", &k), "go(location=\"shelf 1\")");
        let mut k = Map::new();
        k.insert("command".into(), json!("go to drawer 2"));
        assert_eq!(render_api("act", &k), "go to drawer 2");
        let mut k = Map::new();
        k.insert("n".into(), json!(3));
        assert_eq!(render_api("wait", &k), "wait(n=3)");
    }

    #[test]
    fn camel_case_classes_are_read() {
        assert_eq!(class_name("TextObservation"), "text_observation");
        assert_eq!(class_name("api_action"), "api_action");
    }
}
