//! The schema's content items (actions and observations of every class and version spelling)
//! read into one form, with the field checks the schema makes.

use super::*;

/// Who produced an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    User,
    Environment,
    Agent,
    System,
}

pub(super) fn source_of(s: &str) -> Option<Source> {
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
pub(super) enum Item {
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
pub(super) fn class_name(raw: &str) -> String {
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

pub(super) fn opt_str(
    o: &Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<String>, FieldError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(field_err(
            format!("{at}.{key}"),
            format!("expected a string or null, found {}", kind_of(other)),
        )),
    }
}

pub(super) fn req_str(o: &Map<String, Value>, key: &str, at: &str) -> Result<String, FieldError> {
    opt_str(o, key, at)?
        .ok_or_else(|| field_err(format!("{at}.{key}"), "required string is missing"))
}

pub(super) fn opt_reward(o: &Map<String, Value>, at: &str) -> Result<Option<f32>, FieldError> {
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

pub(super) use crate::jsonl::kind_of;

pub(super) fn check_fields(
    o: &Map<String, Value>,
    allowed: &[&str],
    at: &str,
) -> Result<(), FieldError> {
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
pub(super) fn render_api(function: &str, kwargs: &Map<String, Value>) -> String {
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

pub(super) const ACTION_BASE: &[&str] =
    &["reasoning_content", "reward", "tool_call_id", "description"];
pub(super) const OBS_BASE: &[&str] = &["reward", "tool_call_id"];

pub(super) fn read_item(v: &Value, at: &str) -> Result<Item, FieldError> {
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
            Ok(Item::Action {
                text: render_api(&function, &api_kwargs(o, at)?),
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
            Ok(Item::Observation {
                text: web_text(o, at)?,
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
            Ok(Item::Observation {
                text: image_text(o, at)?,
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

/// An api_action's `kwargs`: an object, or nothing (null or absent) for none.
fn api_kwargs(o: &Map<String, Value>, at: &str) -> Result<Map<String, Value>, FieldError> {
    match o.get("kwargs") {
        Some(Value::Object(k)) => Ok(k.clone()),
        Some(Value::Null) | None => Ok(Map::new()),
        Some(other) => Err(field_err(
            format!("{at}.kwargs"),
            format!("expected an object, found {}", kind_of(other)),
        )),
    }
}

/// A web page as text: its url, then the accessibility tree (the page as an agent reads it), or
/// the HTML's text only when the tree is absent.
fn web_text(o: &Map<String, Value>, at: &str) -> Result<String, FieldError> {
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
    Ok(text)
}

/// An image as text: its reference, then the text of its annotations.
fn image_text(o: &Map<String, Value>, at: &str) -> Result<String, FieldError> {
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
    Ok(text)
}

pub(super) fn reasoning_of(o: &Map<String, Value>, at: &str) -> Result<Option<String>, FieldError> {
    let r = opt_str(o, "reasoning_content", at)?.filter(|s| !s.trim().is_empty());
    let d = opt_str(o, "description", at)?.filter(|s| !s.trim().is_empty());
    Ok(r.or(d))
}

pub(super) fn read_source(o: &Map<String, Value>, at: &str) -> Result<Source, FieldError> {
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
pub(super) fn html_text(html: &str) -> String {
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
