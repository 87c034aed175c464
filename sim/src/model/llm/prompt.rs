//! The prompt an LLM experience model is given and the reply it must produce: shared by the
//! SFT export (training data) and LLM-backed models, so both speak the same format.

use crate::model::ModelContext;
use dreamgym_buffer::Observation;
use serde::Serialize;
use std::fmt::Write;

/// The system message.
pub const SYSTEM_PROMPT: &str = "You are the experience model of a text environment. Given a task, the recent history, \
similar transitions from real experience, the current state (one element per line, `[id] kind: text`) and the \
agent's action, think step by step about the action's effect, then predict the next state, the reward and whether \
the episode ends. An action that is not admissible changes nothing and gives reward 0. Reply with one JSON object: \
{\"reasoning\": string, \"next_state\": {\"lines\": [string], \"admissible\": [string], \"feedback\": string}, \
\"reward\": number, \"done\": boolean, \"success\": boolean}, with `reasoning` first.";

/// The JSON schema of a reply (for servers that constrain generation); keys in reply order.
pub fn reply_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "next_state": {
                "type": "object",
                "properties": {
                    "lines": {"type": "array", "items": {"type": "string"}},
                    "admissible": {"type": "array", "items": {"type": "string"}},
                    "feedback": {"type": "string"}
                },
                "required": ["lines", "admissible", "feedback"]
            },
            "reward": {"type": "number"},
            "done": {"type": "boolean"},
            "success": {"type": "boolean"}
        },
        "required": ["reasoning", "next_state", "reward", "done", "success"]
    })
}

/// Steps of history a prompt shows: the most recent.
pub const PROMPT_HISTORY: usize = 8;

/// Retrieved transitions a prompt shows: the top-k most like the current state and action.
pub const PROMPT_DEMOS: usize = 4;

/// The retrieved transitions most like the current one: the same action first, then the most
/// state lines in common (ties keep retrieval order).
fn demonstrations<'a>(ctx: &ModelContext<'a>) -> Vec<&'a dreamgym_buffer::Step> {
    let now: std::collections::HashSet<&String> = ctx.state.lines.iter().collect();
    let score = |d: &dreamgym_buffer::Step| {
        let shared = d.state.lines.iter().filter(|l| now.contains(l)).count();
        ((d.action == ctx.action) as usize, shared)
    };
    let mut demos: Vec<&dreamgym_buffer::Step> = ctx.retrieved.iter().collect();
    demos.sort_by_key(|d| std::cmp::Reverse(score(d)));
    demos.truncate(PROMPT_DEMOS);
    demos
}

/// The user message for one prediction.
pub fn user_prompt(ctx: &ModelContext) -> String {
    let mut p = String::new();
    let _ = writeln!(p, "Task: {}", ctx.task.instruction);
    if !ctx.history.is_empty() {
        let _ = writeln!(p, "\nRecent history (oldest first):");
        let from = ctx.history.len().saturating_sub(PROMPT_HISTORY);
        for h in &ctx.history[from..] {
            let fb = if h.next_state.feedback.is_empty() {
                String::new()
            } else {
                format!(" -> {}", h.next_state.feedback)
            };
            let _ = writeln!(p, "- {}{fb}", h.action);
        }
    }
    if !ctx.retrieved.is_empty() {
        let _ = writeln!(p, "\nSimilar real transitions:");
        for (i, d) in demonstrations(ctx).into_iter().enumerate() {
            let _ = writeln!(p, "[{}] state:", i + 1);
            for l in &d.state.lines {
                let _ = writeln!(p, "    {l}");
            }
            let _ = writeln!(p, "    action: {}", d.action);
            let _ = writeln!(p, "    next state:");
            for l in &d.next_state.lines {
                let _ = writeln!(p, "    {l}");
            }
            let _ = writeln!(p, "    reward: {}, done: {}", d.reward, d.done);
        }
    }
    let _ = writeln!(p, "\nCurrent state:");
    for l in &ctx.state.lines {
        let _ = writeln!(p, "{l}");
    }
    let _ = writeln!(
        p,
        "\nAdmissible actions: {}",
        ctx.state.admissible.join(" | ")
    );
    let _ = write!(p, "\nAction: {}", ctx.action);
    p
}

#[derive(Serialize)]
struct NextState<'a> {
    lines: &'a [String],
    admissible: &'a [String],
    feedback: &'a str,
}

#[derive(Serialize)]
struct Reply<'a> {
    reasoning: &'a str,
    next_state: NextState<'a>,
    reward: f32,
    done: bool,
    success: bool,
}

/// The reply text: JSON with the keys in the order of [`reply_schema`] (reasoning first).
pub fn reply_json(
    reasoning: &str,
    next: &Observation,
    reward: f32,
    done: bool,
    success: bool,
) -> String {
    serde_json::to_string(&Reply {
        reasoning,
        next_state: NextState {
            lines: &next.lines,
            admissible: &next.admissible,
            feedback: &next.feedback,
        },
        reward,
        done,
        success,
    })
    .expect("replies always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_keeps_reasoning_first_and_prompt_carries_the_context() {
        let obs = Observation {
            lines: vec!["[a] thing: a".into()],
            instruction: "do".into(),
            admissible: vec!["x".into()],
            feedback: String::new(),
        };
        let r = reply_json("because", &obs, 1.0, true, true);
        assert!(
            r.starts_with("{\"reasoning\":\"because\",\"next_state\":"),
            "{r}"
        );
        let task = crate::model::test_task("do it");
        let p = user_prompt(&ModelContext {
            task: &task,
            history: &[],
            state: &obs,
            action: "x",
            retrieved: &[],
        });
        assert!(
            p.starts_with("Task: do it") && p.contains("[a] thing: a") && p.ends_with("Action: x"),
            "{p}"
        );
        assert_eq!(reply_schema()["required"][0], "reasoning");
    }

    #[test]
    fn prompts_show_recent_history_and_the_most_similar_demonstrations() {
        let obs = |lines: &[&str]| Observation {
            lines: lines.iter().map(|l| l.to_string()).collect(),
            instruction: "do".into(),
            admissible: vec![],
            feedback: String::new(),
        };
        let step = |lines: &[&str], action: &str| dreamgym_buffer::Step {
            state: obs(lines),
            action: action.into(),
            reward: 0.0,
            next_state: obs(&["[z] thing: after"]),
            done: false,
            truncated: false,
            reasoning: None,
            provenance: dreamgym_buffer::Provenance::Real,
            reward_known: true,
        };
        let task = crate::model::test_task("do it");
        let history: Vec<_> = (0..12)
            .map(|i| step(&["[a] thing: a"], &format!("act{i}")))
            .collect();
        let mut retrieved: Vec<_> = (0..9)
            .map(|i| step(&["[q] thing: q"], &format!("other{i}")))
            .collect();
        retrieved.push(step(&["[a] thing: a"], "x"));
        retrieved.push(step(&["[a] thing: a"], "y"));
        let p = user_prompt(&ModelContext {
            task: &task,
            history: &history,
            state: &obs(&["[a] thing: a"]),
            action: "x",
            retrieved: &retrieved,
        });
        // the last PROMPT_HISTORY steps only
        assert!(
            !p.contains("- act3\n") && p.contains("- act4\n") && p.contains("- act11\n"),
            "{p}"
        );
        // PROMPT_DEMOS demonstrations, the same action in the same state first, then the same state
        assert_eq!(p.matches("] state:").count(), PROMPT_DEMOS, "{p}");
        let first = p.find("[1] state:").unwrap();
        assert!(
            p[first..].starts_with("[1] state:\n    [a] thing: a\n    action: x\n"),
            "{p}"
        );
        assert!(
            p.contains("[2] state:\n    [a] thing: a\n    action: y\n"),
            "{p}"
        );
    }
}
