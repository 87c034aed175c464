//! Fuzzing of every parser that reads outside input: the RON scenario compiler (then a reset and
//! a few steps of what it accepts), the JSONL trajectory reader, the bridge's reset and step
//! replies, and the LLM model's replies. Inputs are valid texts with random edits (deleted
//! spans, inserted characters and tokens, replaced and duplicated spans) and, for the bridge,
//! arbitrary JSON values. Each must give a value or an error — never a panic — and what is
//! accepted must be sound (finite rewards, a record that reads back as itself, ...).
//!
//! CI runs proptest's default 256 cases per target; for a longer run set `PROPTEST_CASES`
//! (`scripts/fuzz.sh` does, and prints the figures the README reports).

use dreamgym_buffer::jsonl;
use dreamgym_sim::bridge::{reset_reply, step_reply};
use dreamgym_sim::model::llm::parse_prediction;
use dreamgym_sim::model::llm::prompt::reply_json;
use dreamgym_sim::policy::{BehaviourPolicy, collect_episode};
use dreamgym_sim::{Env, ScenarioEnv, TaskSpec, World};
use proptest::prelude::*;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Notes an accepted input on stderr when `DREAMGYM_FUZZ_STATS` is set (`scripts/fuzz.sh` counts
/// them: a fuzzer whose inputs were all refused would have tested little past the first check).
fn accepted(target: &str) {
    if std::env::var_os("DREAMGYM_FUZZ_STATS").is_some() {
        eprintln!("fuzz-accepted {target}");
    }
}

/// One random edit of a text, at a position taken modulo its length.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
    Duplicate(usize, usize),
}

/// Characters and tokens that matter to JSON and RON parsers.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    "\"",
    ":",
    ",",
    "\\",
    "\n",
    " ",
    "0",
    "-",
    "1e39",
    "-1e39",
    "NaN",
    "inf",
    "null",
    "true",
    "false",
    "Some(",
    "None",
    "?x",
    "not ",
    "é",
    "\u{feff}",
    "\u{0}",
    "18446744073709551616",
    "1.5",
    "//",
    "/*",
    "r#\"",
];

/// Tokens of the scenario language's literals and templates.
const EXPR_TOKENS: &[&str] = &[
    "?o", "?k", "?r", "?d", "?x", "_", "not ", ", ", "(", ")", "=", "!=", "<", ">=", ".color",
    ".name", ".type", ".nope", "{o}", "{o.name}", "{", "}", "room_a", "door_ab", "holding",
    "agent_in", "in", "near", "locked", "open", "3", "-1", "\"", " ",
];

fn edit() -> impl Strategy<Value = Edit> {
    edit_with(TOKENS)
}

fn edit_with(tokens: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), proptest::sample::select(tokens))
            .prop_map(|(p, t)| Edit::Insert(p, t.into())),
        (any::<usize>(), any::<char>()).prop_map(|(p, c)| Edit::Insert(p, c.to_string())),
        (any::<usize>(), proptest::char::range(' ', '~')).prop_map(|(p, c)| Edit::Replace(p, c)),
        (any::<usize>(), 1..60usize).prop_map(|(p, n)| Edit::Duplicate(p, n)),
    ]
}

/// `text` with `edits` applied (on characters, so the result stays valid UTF-8).
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % len };
        match e {
            Edit::Delete(p, n) => {
                let s = at(*p, chars.len());
                let end = (s + n).min(chars.len());
                chars.drain(s..end);
            }
            Edit::Insert(p, t) => {
                let s = at(*p, chars.len() + 1);
                chars.splice(s..s, t.chars());
            }
            Edit::Replace(p, c) => {
                if !chars.is_empty() {
                    let s = at(*p, chars.len());
                    chars[s] = *c;
                }
            }
            Edit::Duplicate(p, n) => {
                let s = at(*p, chars.len());
                let end = (s + n).min(chars.len());
                let span: Vec<char> = chars[s..end].to_vec();
                chars.splice(end..end, span);
            }
        }
    }
    chars.into_iter().collect()
}

/// `text` with `edits` applied inside its `which`-th quoted string (modulo their number): the
/// RON stays valid, so the compiler's own checks (literals, templates, types) are what is fuzzed.
fn mutate_quoted(text: &str, which: usize, edits: &[Edit]) -> String {
    let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
    let spans = quotes.len() / 2;
    if spans == 0 {
        return text.to_string();
    }
    let k = which % spans;
    let (open, close) = (quotes[2 * k], quotes[2 * k + 1]);
    let inner = mutate(&text[open + 1..close], edits).replace('"', "'");
    format!("{}{inner}{}", &text[..=open], &text[close..])
}

fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn scenario_texts() -> &'static [(PathBuf, String)] {
    static T: OnceLock<Vec<(PathBuf, String)>> = OnceLock::new();
    T.get_or_init(|| {
        ["keys_doors.ron", "household.ron", "webshop.ron"]
            .iter()
            .map(|n| {
                let p = scenario_path(n);
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect()
    })
}

/// Valid JSONL lines: a few episodes of each shipped scenario.
fn jsonl_lines() -> &'static [String] {
    static L: OnceLock<Vec<String>> = OnceLock::new();
    L.get_or_init(|| {
        let mut out = vec![];
        for (path, _) in scenario_texts() {
            let mut env = ScenarioEnv::load(path).unwrap();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            for seed in 0..2 {
                let t = collect_episode(
                    &mut env,
                    &TaskSpec::default(),
                    seed,
                    BehaviourPolicy::NoisyExpert { epsilon: 0.3 },
                    &mut rng,
                )
                .unwrap();
                out.push(jsonl::to_line(&t));
            }
        }
        out
    })
}

fn observation() -> dreamgym_buffer::Observation {
    dreamgym_buffer::Observation {
        lines: vec!["[door] door: the red door is closed".into()],
        instruction: "open the door".into(),
        admissible: vec!["open door".into(), "look".into()],
        feedback: String::new(),
    }
}

const STEP_REPLY: &str = r#"{"id":3,"ok":true,"observation":{"lines":["[x] thing: a thing"],"instruction":"do it","admissible":["a","b"],"feedback":""},"reward":0.5,"done":false,"truncated":false,"success":false,"info":{"k":"v","n":3}}"#;
const RESET_REPLY: &str = r#"{"id":1,"ok":true,"observation":{"lines":["[x] thing: a thing"],"instruction":"do it","admissible":["a"]},"task":{"id":"t/1","instruction":"do it","params":{"size":5,"name":"x"}}}"#;

/// Arbitrary JSON values (for replies that are JSON but not what the protocol says).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{Value, json};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>().prop_map(|x| json!(x)),
        any::<i64>().prop_map(Value::from),
        "[a-z_ ]{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                proptest::sample::select(
                    &[
                        "observation",
                        "lines",
                        "admissible",
                        "reward",
                        "done",
                        "truncated",
                        "success",
                        "info",
                        "task",
                        "id",
                        "instruction",
                        "params",
                        "ok",
                    ][..]
                ),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #[test]
    fn scenario_compiler_never_panics_and_what_it_accepts_runs(
        which in 0..3usize,
        edits in proptest::collection::vec(edit(), 1..4),
        seed in 0..1000u64,
    ) {
        let (path, text) = &scenario_texts()[which];
        let src = mutate(text, &edits);
        if let Ok(world) = World::from_str(path, &src) {
            accepted("scenario");
            // an accepted scenario resets and steps without a panic (errors are fine)
            let mut env = ScenarioEnv::new(Arc::new(world), "scenario:fuzz".into());
            if let Ok(obs) = env.reset(&TaskSpec::default(), seed) {
                let mut obs = obs;
                for i in 0..5 {
                    let Some(a) = obs.admissible.get(i % obs.admissible.len().max(1)).cloned() else {
                        break;
                    };
                    match env.step(&a) {
                        Ok(r) => {
                            prop_assert!(r.reward.is_finite());
                            if r.done || r.truncated { break; }
                            obs = r.observation;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
    }

    #[test]
    fn scenario_expressions_never_panic_the_compiler(
        which in 0..3usize,
        string in any::<usize>(),
        edits in proptest::collection::vec(edit_with(EXPR_TOKENS), 1..4),
    ) {
        let (path, text) = &scenario_texts()[which];
        if let Ok(world) = World::from_str(path, &mutate_quoted(text, string, &edits)) {
            accepted("scenario");
            let mut env = ScenarioEnv::new(Arc::new(world), "scenario:fuzz".into());
            if let Ok(obs) = env.reset(&TaskSpec::default(), string as u64)
                && let Some(a) = obs.admissible.first()
            {
                let _ = env.step(a);
            }
        }
    }

    #[test]
    fn jsonl_reader_never_panics_and_what_it_accepts_reads_back(
        which in 0..6usize,
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        let line = mutate(&jsonl_lines()[which], &edits);
        if let Ok(t) = jsonl::parse_line(&line, Path::new("fuzz.jsonl"), 1) {
            accepted("jsonl");
            prop_assert!(t.non_finite().is_none());
            let again = jsonl::parse_line(&jsonl::to_line(&t), Path::new("again.jsonl"), 1);
            prop_assert_eq!(again.ok(), Some(t));
        }
    }

    #[test]
    fn bridge_replies_never_panic_and_accepted_rewards_are_finite(
        edits in proptest::collection::vec(edit(), 1..4),
        value in json_value(),
    ) {
        for base in [STEP_REPLY, RESET_REPLY] {
            let text = mutate(base, &edits);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Ok(r) = step_reply(v.clone()) {
                    accepted("bridge");
                    prop_assert!(r.reward.is_finite());
                }
                if reset_reply(v).is_ok() {
                    accepted("bridge");
                }
            }
        }
        if let Ok(r) = step_reply(value.clone()) {
            prop_assert!(r.reward.is_finite());
        }
        let _ = reset_reply(value);
    }

    #[test]
    fn llm_replies_never_panic_and_accepted_predictions_are_sound(
        edits in proptest::collection::vec(edit(), 1..4),
        reward in prop_oneof![Just(0.0f32), Just(1.0), -2.0f32..2.0],
        done in any::<bool>(),
    ) {
        let state = observation();
        let mut next = observation();
        next.lines.push("[door] door: the red door is open".into());
        let text = mutate(&reply_json("the door opens", &next, reward, done, done), &edits);
        if let Ok(p) = parse_prediction(&text, &state) {
            accepted("llm");
            prop_assert!(p.reward.is_finite() && (0.0..=1.0).contains(&p.reward));
            prop_assert!(!p.next_state.lines.is_empty());
            prop_assert!(p.done || !p.next_state.admissible.is_empty());
        }
    }
}

#[test]
fn the_fuzzed_parsers_accept_their_unmutated_inputs() {
    // the properties above would hold vacuously if every input were refused
    for (path, text) in scenario_texts() {
        World::from_str(path, text).unwrap();
    }
    for line in jsonl_lines() {
        jsonl::parse_line(line, Path::new("x.jsonl"), 1).unwrap();
    }
    let step = step_reply(serde_json::from_str(STEP_REPLY).unwrap()).unwrap();
    assert_eq!(step.info["n"], "3");
    reset_reply(serde_json::from_str(RESET_REPLY).unwrap()).unwrap();
    let next = observation();
    parse_prediction(&reply_json("r", &next, 1.0, true, true), &observation()).unwrap();
}

#[test]
fn out_of_range_rewards_and_dead_end_states_are_refused() {
    let big = STEP_REPLY.replace("\"reward\":0.5", "\"reward\":1e39");
    let e = step_reply(serde_json::from_str(&big).unwrap()).unwrap_err();
    assert!(e.contains("`reward` is 1e39"), "{e}");
    // an LLM reply whose next state is not done and offers no action, where the state offered
    // some, is refused (and so retried), not used as a training step
    let mut dead = observation();
    dead.admissible.clear();
    let e =
        parse_prediction(&reply_json("r", &dead, 0.0, false, false), &observation()).unwrap_err();
    assert!(e.contains("lists no admissible actions"), "{e}");
    parse_prediction(&reply_json("r", &dead, 1.0, true, true), &observation()).unwrap();
}
