//! dreamgym trajectories to ADP schema 1.5.0, and the schema's rules checked on what is
//! written.

use super::*;

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
