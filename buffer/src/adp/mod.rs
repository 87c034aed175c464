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

mod convert;
mod export;
mod items;
mod read;

pub use convert::{convert, text_to_lines};
pub use export::{to_adp, validate};
pub use read::read_file;

use crate::records::{Observation, Outcome, Provenance, Step, Task, TaskOrigin, Trajectory};
use convert::*;
use items::*;
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

#[cfg(test)]
mod tests {
    use super::read::array_element_lines;
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
