//! Task generation by an LLM experience model (the paper's `M_task`: the same model with a
//! task-generation prompt). Two stages, as in the paper's WebShop prompts: write candidate harder
//! variations of a seed task, then select the best one with a short reason. Both replies are JSON
//! constrained by a schema; a cut or invalid reply is retried and then rejected like a prediction.

use crate::model::ModelError;
use dreamgym_buffer::Observation;
use serde::Deserialize;
use std::fmt::Write;

/// A seed task to vary.
#[derive(Debug, Clone, Copy)]
pub struct TaskSeed<'a> {
    /// The seed task's instruction.
    pub instruction: &'a str,
    /// Its initial state (the world the variation must stay feasible in).
    pub state: &'a Observation,
    /// The policy's recent success rate on it, if known.
    pub success: Option<f32>,
    /// Instructions of other real tasks of the environment (its vocabulary and style).
    pub examples: &'a [String],
    /// How many candidate variations to write before selecting one.
    pub candidates: usize,
}

/// The selected variation.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskVariation {
    /// The new task's instruction.
    pub instruction: String,
    /// Why the selection stage picked it.
    pub reasoning: String,
    /// Every candidate written (the selected one among them).
    pub candidates: Vec<String>,
}

/// Something that writes harder variations of tasks (an LLM experience model).
pub trait TaskWriter: Send + Sync {
    /// A harder, feasible variation of `seed`.
    fn vary_task(&self, seed: &TaskSeed) -> Result<TaskVariation, ModelError>;
}

/// System message of the variation stage.
pub const TASK_VARIATION_SYSTEM: &str = "You write tasks for training an agent in a text environment. \
Given a seed task the agent is learning, its initial state (one element per line, `[id] kind: text`) and examples of \
real tasks of this environment, write harder variations of the seed task that stay feasible from that initial \
state: more specific, or with more steps, using only objects, places and attributes the state or the real tasks \
mention, phrased like the real tasks. Each variation must change what the agent has to do, not just the wording. \
Reply with one JSON object: {\"candidates\": [{\"instruction\": string}]}.";

/// System message of the selection stage.
pub const TASK_SELECTION_SYSTEM: &str = "You choose the best harder variation of a task for training an agent. \
Criteria: challenging but feasible (more specific or complex than the original, yet achievable from the initial \
state shown); clear, grammatical and realistic; a meaningful variation, not a trivial edit; only objects and \
attributes that exist in the state. Reply with one JSON object: {\"reasoning\": string (one or two sentences), \
\"selection\": integer (the number of the chosen candidate)}, with `reasoning` first.";

fn write_seed(p: &mut String, seed: &TaskSeed) {
    let _ = writeln!(p, "Seed task: {}", seed.instruction);
    if let Some(s) = seed.success {
        let _ = writeln!(
            p,
            "The agent currently succeeds on it {:.0}% of the time.",
            100.0 * s
        );
    }
    let _ = writeln!(p, "\nInitial state:");
    for l in &seed.state.lines {
        let _ = writeln!(p, "{l}");
    }
    if !seed.state.admissible.is_empty() {
        let _ = writeln!(
            p,
            "\nActions available there: {}",
            seed.state.admissible.join(" | ")
        );
    }
}

/// The user message of the variation stage.
pub fn task_variation_prompt(seed: &TaskSeed) -> String {
    let mut p = String::new();
    write_seed(&mut p, seed);
    if !seed.examples.is_empty() {
        let _ = writeln!(p, "\nReal tasks of this environment:");
        for e in seed.examples {
            let _ = writeln!(p, "- {e}");
        }
    }
    let _ = write!(
        p,
        "\nWrite {} harder variations of the seed task.",
        seed.candidates.max(1)
    );
    p
}

/// The user message of the selection stage.
pub fn task_selection_prompt(seed: &TaskSeed, candidates: &[String]) -> String {
    let mut p = String::new();
    write_seed(&mut p, seed);
    let _ = writeln!(p, "\nCandidate variations:");
    for (i, c) in candidates.iter().enumerate() {
        let _ = writeln!(p, "{}. {c}", i + 1);
    }
    let _ = write!(p, "\nWhich candidate is best?");
    p
}

/// JSON schema of the variation stage's reply.
pub fn candidates_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "candidates": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"instruction": {"type": "string"}},
                    "required": ["instruction"]
                }
            }
        },
        "required": ["candidates"]
    })
}

/// JSON schema of the selection stage's reply (reasoning first).
pub fn selection_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "selection": {"type": "integer"}
        },
        "required": ["reasoning", "selection"]
    })
}

/// The distinct, non-empty candidates of a variation reply (at most `n`), or why there are none.
pub fn parse_candidates(content: &str, n: usize) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    struct Candidate {
        instruction: String,
    }
    #[derive(Deserialize)]
    struct Reply {
        candidates: Vec<Candidate>,
    }
    let r: Reply = serde_json::from_str(content)
        .map_err(|e| format!("{e}: {:?}", content.chars().take(200).collect::<String>()))?;
    let mut out: Vec<String> = vec![];
    for c in r.candidates {
        let t = c
            .instruction
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !t.is_empty() && !out.contains(&t) && out.len() < n {
            out.push(t);
        }
    }
    if out.is_empty() {
        return Err("no candidate variation in the reply".into());
    }
    Ok(out)
}

/// The selection reply's reasoning and 0-based pick among `len` candidates, or why it is invalid.
pub fn parse_selection(content: &str, len: usize) -> Result<(String, usize), String> {
    #[derive(Deserialize)]
    struct Reply {
        #[serde(default)]
        reasoning: String,
        selection: i64,
    }
    let r: Reply = serde_json::from_str(content)
        .map_err(|e| format!("{e}: {:?}", content.chars().take(200).collect::<String>()))?;
    if r.selection < 1 || r.selection as usize > len {
        return Err(format!(
            "selection {} is not a candidate number (1 to {len})",
            r.selection
        ));
    }
    Ok((r.reasoning, r.selection as usize - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_and_checked() {
        let c = parse_candidates(
            r#"{"candidates":[{"instruction":" put  the apple in the fridge "},{"instruction":""},{"instruction":"put the apple in the fridge"},{"instruction":"b"},{"instruction":"c"}]}"#,
            2,
        )
        .unwrap();
        assert_eq!(
            c,
            vec!["put the apple in the fridge", "b"],
            "trimmed, deduplicated, at most n"
        );
        assert!(parse_candidates(r#"{"candidates":[]}"#, 3).is_err());
        assert!(
            parse_candidates(r#"{"candidates":[{"instruction":"x"}"#, 3).is_err(),
            "cut JSON"
        );
        assert_eq!(
            parse_selection(r#"{"reasoning":"harder","selection":2}"#, 2).unwrap(),
            ("harder".to_string(), 1)
        );
        assert!(parse_selection(r#"{"reasoning":"x","selection":3}"#, 2).is_err());
        assert!(parse_selection(r#"{"reasoning":"x","selection":0}"#, 2).is_err());
    }

    #[test]
    fn prompts_carry_the_seed_its_state_and_the_candidates() {
        let state = Observation {
            lines: vec!["[apple_1] apple: an apple on the table".into()],
            instruction: "take the apple".into(),
            admissible: vec!["take apple 1".into()],
            feedback: String::new(),
        };
        let examples = vec!["put the mug in the sink".to_string()];
        let seed = TaskSeed {
            instruction: "take the apple",
            state: &state,
            success: Some(0.5),
            examples: &examples,
            candidates: 3,
        };
        let p = task_variation_prompt(&seed);
        assert!(p.starts_with("Seed task: take the apple"), "{p}");
        assert!(p.contains("succeeds on it 50%") && p.contains("[apple_1] apple"));
        assert!(
            p.contains("- put the mug in the sink")
                && p.ends_with("Write 3 harder variations of the seed task.")
        );
        let s = task_selection_prompt(&seed, &["a".into(), "b".into()]);
        assert!(s.contains("1. a\n2. b\n"), "{s}");
        assert_eq!(selection_schema()["required"][0], "reasoning");
    }
}
