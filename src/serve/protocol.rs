//! The OpenEnv wire format as `openenv-core` 0.3's clients speak it: what a message looks like,
//! what an observation is, the error codes, and the schemas `GET /schema` returns.
//!
//! WebSocket messages are JSON objects `{"type": "reset" | "step" | "state" | "close", "data":
//! {...}}`; the answers are `{"type": "observation", "data": {"observation": {...}, "reward": R,
//! "done": D}}`, `{"type": "state", "data": {...}}` or `{"type": "error", "data": {"message": ...,
//! "code": ...}}`. The observation carries the textual state, the instruction, the admissible
//! actions and the feedback; an action is `{"action": "<text>"}`.

use dreamgym_buffer::jsonl::kind_of;
use dreamgym_buffer::{Observation, Task};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// OpenEnv's error codes (`WSErrorCode`), sent in `data.code` of an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The message is not JSON.
    InvalidJson,
    /// The message's `type` is none of reset, step, state, close.
    UnknownType,
    /// The message is JSON but not a valid request (wrong fields, a step before reset, an
    /// inadmissible action, a step after the episode ended).
    Validation,
    /// The environment failed (a bridged env's child died, the model erred).
    Execution,
    /// The server holds its maximum number of sessions.
    CapacityReached,
    /// The environment could not be opened.
    Factory,
    /// The session ended (idle timeout, server shutdown, authentication).
    Session,
}

impl ErrorCode {
    /// The code as OpenEnv writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::UnknownType => "UNKNOWN_TYPE",
            ErrorCode::Validation => "VALIDATION_ERROR",
            ErrorCode::Execution => "EXECUTION_ERROR",
            ErrorCode::CapacityReached => "CAPACITY_REACHED",
            ErrorCode::Factory => "FACTORY_ERROR",
            ErrorCode::Session => "SESSION_ERROR",
        }
    }

    /// The HTTP status the same error gets on the HTTP endpoints.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson => 400,
            ErrorCode::UnknownType | ErrorCode::Validation => 422,
            ErrorCode::Execution | ErrorCode::Factory => 500,
            ErrorCode::CapacityReached => 503,
            ErrorCode::Session => 410,
        }
    }
}

/// An error answered to the client; the session stays open unless the code says otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeError {
    /// Which kind of error.
    pub code: ErrorCode,
    /// What went wrong and what was expected.
    pub message: String,
}

impl ServeError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A request that is not what the protocol expects.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }

    /// The `data` of the error answer.
    pub fn data(&self) -> Value {
        json!({"message": self.message, "code": self.code.as_str()})
    }

    /// The whole WebSocket error answer.
    pub fn to_ws(&self) -> String {
        json!({"type": "error", "data": self.data()}).to_string()
    }
}

/// A WebSocket message from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Start an episode.
    Reset(ResetRequest),
    /// Take an action.
    Step(String),
    /// Ask for the session's state.
    State,
    /// End the session.
    Close,
}

/// Parse one WebSocket text frame.
pub fn parse_message(text: &str) -> Result<Incoming, ServeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ServeError::new(
            ErrorCode::InvalidJson,
            format!("Invalid JSON: {e} (expected an object like {{\"type\": \"step\", \"data\": {{\"action\": \"...\"}}}})"),
        )
    })?;
    let Value::Object(map) = value else {
        return Err(ServeError::invalid(format!(
            "expected a JSON object with a `type`, got {}",
            kind_of(&value)
        )));
    };
    let kind = match map.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(other) => {
            return Err(ServeError::invalid(format!(
                "`type` must be a string, got {}",
                kind_of(other)
            )));
        }
        None => "",
    };
    if let Some(extra) = map.keys().find(|k| *k != "type" && *k != "data") {
        return Err(ServeError::invalid(format!(
            "unexpected field `{extra}` in a message (a message has `type` and `data`)"
        )));
    }
    let data = map.get("data").cloned().unwrap_or(Value::Null);
    match kind {
        "reset" => Ok(Incoming::Reset(ResetRequest::from_value(&data)?)),
        "step" => match &data {
            Value::Null => Err(ServeError::invalid(
                "a step needs `data` with the action: {\"action\": \"<text>\"}",
            )),
            d => Ok(Incoming::Step(parse_action(d)?)),
        },
        "state" => Ok(Incoming::State),
        "close" => Ok(Incoming::Close),
        other => Err(ServeError::new(
            ErrorCode::UnknownType,
            format!("Unknown message type: {other:?} (expected reset, step, state or close)"),
        )),
    }
}

/// The action text of a step's `data` (`{"action": "<text>"}`, optionally with `metadata`).
pub fn parse_action(data: &Value) -> Result<String, ServeError> {
    let Value::Object(map) = data else {
        return Err(ServeError::invalid(format!(
            "an action is an object {{\"action\": \"<text>\"}}, got {}",
            kind_of(data)
        )));
    };
    if let Some(extra) = map.keys().find(|k| *k != "action" && *k != "metadata") {
        return Err(ServeError::invalid(format!(
            "unexpected field `{extra}` in the action (an action has `action` and optional `metadata`)"
        )));
    }
    match map.get("action") {
        Some(Value::String(a)) => Ok(a.clone()),
        Some(other) => Err(ServeError::invalid(format!(
            "`action` must be the action's text, got {}",
            kind_of(other)
        ))),
        None => Err(ServeError::invalid(
            "the action has no `action` field: send {\"action\": \"<text>\"}",
        )),
    }
}

/// What a reset may ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResetRequest {
    /// The instance seed (drawn by the session when absent).
    pub seed: Option<u64>,
    /// The client's name for the episode (the server makes one when absent).
    pub episode_id: Option<String>,
    /// Only tasks of this template.
    pub template: Option<String>,
    /// Only this difficulty level.
    pub difficulty: Option<u32>,
}

impl ResetRequest {
    /// The fields a reset accepts.
    pub const FIELDS: [&'static str; 4] = ["seed", "episode_id", "template", "difficulty"];

    /// Parse a reset's `data` (null or an object of [`Self::FIELDS`]).
    pub fn from_value(data: &Value) -> Result<Self, ServeError> {
        let map = match data {
            Value::Null => return Ok(Self::default()),
            Value::Object(m) => m,
            other => {
                return Err(ServeError::invalid(format!(
                    "reset's `data` must be an object, got {}",
                    kind_of(other)
                )));
            }
        };
        if let Some(k) = map.keys().find(|k| !Self::FIELDS.contains(&k.as_str())) {
            return Err(ServeError::invalid(format!(
                "reset does not take `{k}` (it takes {})",
                Self::FIELDS.join(", ")
            )));
        }
        let text = |k: &str| -> Result<Option<String>, ServeError> {
            match map.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.len() <= 255 => Ok(Some(s.clone())),
                Some(Value::String(_)) => Err(ServeError::invalid(format!(
                    "reset's `{k}` is longer than 255 bytes"
                ))),
                Some(v) => Err(ServeError::invalid(format!(
                    "reset's `{k}` must be a string, got {}",
                    kind_of(v)
                ))),
            }
        };
        let whole = |k: &str| -> Result<Option<u64>, ServeError> {
            match map.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                    ServeError::invalid(format!(
                        "reset's `{k}` must be a whole number >= 0, got {v}"
                    ))
                }),
            }
        };
        let difficulty = match whole("difficulty")? {
            None => None,
            Some(d) => Some(u32::try_from(d).map_err(|_| {
                ServeError::invalid(format!("reset's `difficulty` {d} is too large"))
            })?),
        };
        Ok(Self {
            seed: whole("seed")?,
            episode_id: text("episode_id")?,
            template: text("template")?,
            difficulty,
        })
    }
}

/// The observation part of an answer (OpenEnv's `observation`, without reward and done),
/// serialised straight from the env's data.
#[derive(Debug, serde::Serialize)]
pub struct ObservationOut<'a> {
    /// The state lines.
    pub lines: &'a [String],
    /// The task's instruction.
    pub instruction: &'a str,
    /// The actions the env accepts now.
    pub admissible: &'a [String],
    /// What the last action did; empty at reset.
    pub feedback: &'a str,
    /// The task instance.
    pub task_id: Option<&'a str>,
    /// The episode's id.
    pub episode_id: &'a str,
    /// Steps taken in the episode.
    pub step: usize,
    /// Cut by the step limit (or a model failure); `done` is set too, so a client's loop ends.
    pub truncated: bool,
    /// The task was accomplished.
    pub success: bool,
    /// The env's extras (`valid`; a model's `confidence` and `reasoning`).
    pub info: &'a BTreeMap<String, String>,
}

impl<'a> ObservationOut<'a> {
    /// The observation `obs` of `task` after `step` steps.
    pub fn new(
        obs: &'a Observation,
        task: Option<&'a Task>,
        episode_id: &'a str,
        step: usize,
    ) -> Self {
        static NO_INFO: BTreeMap<String, String> = BTreeMap::new();
        Self {
            lines: &obs.lines,
            instruction: &obs.instruction,
            admissible: &obs.admissible,
            feedback: &obs.feedback,
            task_id: task.map(|t| t.id.as_str()),
            episode_id,
            step,
            truncated: false,
            success: false,
            info: &NO_INFO,
        }
    }
}

/// The `data` of an observation answer (OpenEnv's `{observation, reward, done}`) as JSON text.
pub fn result_json(observation: &ObservationOut<'_>, reward: Option<f32>, done: bool) -> String {
    #[derive(serde::Serialize)]
    struct Out<'a, 'b> {
        observation: &'b ObservationOut<'a>,
        reward: Option<f32>,
        done: bool,
    }
    serde_json::to_string(&Out {
        observation,
        reward,
        done,
    })
    .expect("observations always serialise")
}

/// A whole WebSocket answer of `kind` around `data` (JSON text).
pub fn ws_answer(kind: &str, data: &str) -> String {
    format!("{{\"type\":\"{kind}\",\"data\":{data}}}")
}

/// `GET /schema`: JSON schemas of the action, the observation and the state.
pub fn schema() -> Value {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "action": {
            "title": "Action",
            "type": "object",
            "description": "The text of one admissible action (from the observation's `admissible` list).",
            "properties": {
                "action": {"type": "string", "description": "The action's text, e.g. \"open fridge 1\"."},
                "metadata": {"type": "object", "description": "Ignored by the env; kept for OpenEnv compatibility."}
            },
            "required": ["action"],
            "additionalProperties": false
        },
        "observation": {
            "title": "Observation",
            "type": "object",
            "properties": {
                "lines": {"type": "array", "items": {"type": "string"}, "description": "The state, one element or fact per line (`[id] kind: text`)."},
                "instruction": {"type": "string"},
                "admissible": strings,
                "feedback": {"type": "string", "description": "What the last action did (e.g. a failure message); empty at reset."},
                "task_id": {"type": ["string", "null"]},
                "episode_id": {"type": "string"},
                "step": {"type": "integer", "description": "Steps taken in the episode."},
                "truncated": {"type": "boolean", "description": "Cut by the step limit or a model failure (done is true too)."},
                "success": {"type": "boolean"},
                "info": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Env extras: valid, and for a synthetic env the model's confidence and reasoning."}
            }
        },
        "state": {
            "title": "State",
            "type": "object",
            "properties": {
                "episode_id": {"type": ["string", "null"]},
                "step_count": {"type": "integer"},
                "session_id": {"type": "string"},
                "env": {"type": "string"},
                "task": {"type": ["object", "null"]},
                "done": {"type": "boolean"}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_as_the_python_client_sends_them() {
        assert_eq!(
            parse_message(r#"{"type":"reset","data":{}}"#).unwrap(),
            Incoming::Reset(ResetRequest::default())
        );
        assert_eq!(
            parse_message(r#"{"type":"reset","data":{"seed":7,"difficulty":2}}"#).unwrap(),
            Incoming::Reset(ResetRequest {
                seed: Some(7),
                difficulty: Some(2),
                ..Default::default()
            })
        );
        assert_eq!(
            parse_message(r#"{"type":"step","data":{"action":"go north","metadata":{}}}"#).unwrap(),
            Incoming::Step("go north".into())
        );
        assert_eq!(
            parse_message(r#"{"type":"state"}"#).unwrap(),
            Incoming::State
        );
        assert_eq!(
            parse_message(r#"{"type":"close"}"#).unwrap(),
            Incoming::Close
        );
    }

    #[test]
    fn bad_messages_get_the_openenv_code_and_say_what_was_expected() {
        let code = |t: &str| parse_message(t).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"jump"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"data":{}}"#), ErrorCode::UnknownType);
        assert_eq!(code("[1,2]"), ErrorCode::Validation);
        assert_eq!(code(r#"{"type":"step"}"#), ErrorCode::Validation);
        assert_eq!(
            code(r#"{"type":"step","data":{"act":"x"}}"#),
            ErrorCode::Validation
        );
        assert_eq!(
            code(r#"{"type":"step","data":{"action":3}}"#),
            ErrorCode::Validation
        );
        assert_eq!(
            code(r#"{"type":"reset","data":{"seed":-1}}"#),
            ErrorCode::Validation
        );
        assert_eq!(
            code(r#"{"type":"reset","data":{"colour":1}}"#),
            ErrorCode::Validation
        );
        let e = parse_message(r#"{"type":"reset","data":{"colour":1}}"#).unwrap_err();
        assert!(
            e.message.contains("colour") && e.message.contains("seed"),
            "{}",
            e.message
        );
        let e = parse_message(r#"{"type":"step","data":{"act":"x"}}"#).unwrap_err();
        assert!(e.message.contains("`act`"), "{}", e.message);
        assert_eq!(
            serde_json::from_str::<Value>(&e.to_ws()).unwrap()["data"]["code"],
            "VALIDATION_ERROR"
        );
    }
}
