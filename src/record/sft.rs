//! `dreamgym model export-sft`: chat-format training data for an LLM experience model.
//!
//! One JSON object per line, `{"messages":[system, user, assistant]}`: the user message carries the
//! task, the recent history, the top-k similar transitions retrieved from the other episodes of the
//! data, the state and the action; the assistant message is the reply JSON (reasoning first, then
//! the real next state, reward and done). The reasoning is the native model's rule-based trace
//! (induced rule, bindings, effect) where that rule predicts what really happened, else a factual
//! account of the real change.

use anyhow::Result;
use dreamgym_buffer::{BufferConfig, Observation, ReplayBuffer, Step, Trajectory};
use dreamgym_sim::model::ModelContext;
use dreamgym_sim::model::llm::prompt::{SYSTEM_PROMPT, reply_json, user_prompt};
use dreamgym_sim::model::native::NativeModel;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// Counts of an export.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SftSummary {
    /// Examples written.
    pub examples: usize,
    /// Examples whose reasoning is the native model's own trace.
    pub model_traces: usize,
}

/// A factual account of a real transition (used where the model's trace would not match it).
fn factual_reasoning(s: &Step) -> String {
    let gone: Vec<&String> = s
        .state
        .lines
        .iter()
        .filter(|l| !s.next_state.lines.contains(l))
        .collect();
    let new: Vec<&String> = s
        .next_state
        .lines
        .iter()
        .filter(|l| !s.state.lines.contains(l))
        .collect();
    let admissible = s.state.admissible.iter().any(|a| a == &s.action);
    let mut r = if !admissible {
        format!("`{}` is not admissible here, so nothing changes.", s.action)
    } else if gone.is_empty() && new.is_empty() {
        format!("`{}` leaves the state as it is.", s.action)
    } else {
        format!("`{}` removes {gone:?} and adds {new:?}.", s.action)
    };
    r.push_str(&format!(
        " Reward {}{}.",
        s.reward,
        if s.done { ", the episode ends" } else { "" }
    ));
    r
}

/// Write the SFT examples of every step of `data` to `out`.
pub fn export(data: &[Trajectory], out: &Path, k: usize, history: usize) -> Result<SftSummary> {
    let model = NativeModel::fit(data);
    let mut buf = ReplayBuffer::new(BufferConfig::default());
    let mut episode_of = vec![];
    for (i, t) in data.iter().enumerate() {
        let ids = buf.push_trajectory(t)?;
        episode_of.extend(ids.iter().map(|_| i));
    }
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut sum = SftSummary::default();
    let set = |o: &Observation| o.lines.iter().cloned().collect::<BTreeSet<_>>();
    for (ti, t) in data.iter().enumerate() {
        for (i, s) in t.steps.iter().enumerate() {
            // similar transitions from other episodes (a little over-fetched, then filtered)
            let retrieved: Vec<Step> = buf
                .retrieve(&s.state.lines, &s.action, k + 8)
                .into_iter()
                .filter(|(h, _)| episode_of[h.id as usize] != ti)
                .take(k)
                .map(|(_, r)| r.step.clone())
                .collect();
            let ctx = ModelContext {
                history: &t.steps[i.saturating_sub(history)..i],
                retrieved: &retrieved,
                ..ModelContext::at_step(t, i)
            };
            // the rule-based trace generalises; the memory of the very same step would not teach
            let reasoning = match model.explain(&ctx) {
                Some(p)
                    if set(&p.next_state) == set(&s.next_state)
                        && p.reward == s.reward
                        && p.done == s.done =>
                {
                    sum.model_traces += 1;
                    p.reasoning
                }
                _ => factual_reasoning(s),
            };
            let success = dreamgym_buffer::is_success(s.done, s.reward);
            let line = serde_json::json!({
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": user_prompt(&ctx)},
                    {"role": "assistant", "content": reply_json(&reasoning, &s.next_state, s.reward, s.done, success)},
                ]
            });
            serde_json::to_writer(&mut w, &line)?;
            w.write_all(b"\n")?;
            sum.examples += 1;
        }
    }
    w.flush()?;
    Ok(sum)
}
