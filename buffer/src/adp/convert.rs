//! One ADP trajectory to a dreamgym trajectory: the task, the steps (state, action, reward,
//! next state) and the checks across items (versions, tool-call links).

use super::*;

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

pub(super) fn is_boilerplate(text: &str) -> bool {
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
    let Parts {
        id,
        content,
        details,
    } = required_parts(o)?;
    let mut params = tool_params(o)?;
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

/// The parts of an ADP trajectory every other field is read from.
struct Parts<'a> {
    id: String,
    content: &'a Vec<Value>,
    details: Map<String, Value>,
}

/// A trajectory's id (a non-empty string, or a number), its content array and its details
/// object (empty when absent).
fn required_parts(o: &Map<String, Value>) -> Result<Parts<'_>, FieldError> {
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
    Ok(Parts {
        id,
        content,
        details,
    })
}

/// The tools a trajectory offers (`available_apis`, `available_custom_tools`,
/// `available_code_languages`) as task params: each list joined with commas.
fn tool_params(
    o: &Map<String, Value>,
) -> Result<std::collections::BTreeMap<String, String>, FieldError> {
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
    Ok(params)
}

pub(super) fn check_version(s: &str) -> Result<(), FieldError> {
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
pub(super) fn check_links(items: &[Item]) -> Result<(), FieldError> {
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
pub(super) fn transitions(
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
    let task_at = task_position(items)?;
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
        let (mut replies, j) = replies_to(items, i, call_id.as_deref());
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
        apply_extras(extra, &mut state, &mut next);
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

/// Where the task is posed: the last user observation before the first tool action (multi-turn
/// prompts put a generic preamble first), else the first user observation.
fn task_position(items: &[Item]) -> Result<usize, FieldError> {
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
    match first_tool {
        Some(f) => items[..f].iter().rposition(is_user_obs),
        None => items.iter().position(is_user_obs),
    }
    .ok_or_else(|| {
        field_err(
            "content",
            "no user observation: the task an ADP trajectory poses is its first user message",
        )
    })
}

/// What came back for the action at `i`: the observations right after it (those linked to it by
/// `call_id` when both have one), with their stated rewards; and the index after them.
fn replies_to<'a>(
    items: &'a [Item],
    i: usize,
    call_id: Option<&str>,
) -> (Vec<(&'a String, Option<f32>)>, usize) {
    let mut j = i + 1;
    let mut replies = vec![];
    while let Some(Item::Observation {
        text,
        reward,
        call_id: obs_id,
        ..
    }) = items.get(j)
    {
        if call_id.is_none() || obs_id.is_none() || obs_id.as_deref() == call_id {
            replies.push((text, *reward));
        }
        j += 1;
    }
    (replies, j)
}

/// dreamgym's own per-step details (`details.dreamgym.steps[k]`, written by its export): the
/// admissible actions and the feedback, which ADP has no field for. Without them the next state
/// has none.
fn apply_extras(
    extra: Option<&Map<String, Value>>,
    state: &mut Observation,
    next: &mut Observation,
) {
    let strings = |a: &Vec<Value>| -> Vec<String> {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    };
    let Some(e) = extra else {
        next.admissible = vec![];
        next.feedback = String::new();
        return;
    };
    if let Some(Value::Array(a)) = e.get("state_admissible") {
        state.admissible = strings(a);
    }
    if let Some(Value::Array(a)) = e.get("next_admissible") {
        next.admissible = strings(a);
    }
    next.feedback = e
        .get("feedback")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
}
