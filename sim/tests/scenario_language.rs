//! The scenario language's second edition: conditional effects (`when`, `forall`), alternatives
//! and `not exists` in conditions, numeric fluents, `OneOf` in setup — their semantics in the
//! engine, the expert planning over them, and their compile errors located at the offending text.

use dreamgym_sim::scenario::World;
use dreamgym_sim::{Env, ScenarioEnv, TaskSpec};
use std::path::Path;
use std::sync::Arc;

/// A small operations world that uses every new feature.
const OPS: &str = r#"Scenario(
    name: "ops",
    max_steps: 20,
    types: [Type(name: "host"), Type(name: "service")],
    predicates: [
        Predicate(name: "on", params: ["service", "host"]),
        Predicate(name: "broken", params: ["service"]),
        Predicate(name: "pending", params: ["service"]),
        Predicate(name: "applied", params: ["service"]),
        Predicate(name: "inspected", params: ["host"]),
        Predicate(name: "cold", params: ["host"]),
        Predicate(name: "healthy", params: ["host"]),
    ],
    fluents: [Fluent(name: "disk", params: ["host"], min: 0, max: 100, default: 50)],
    objects: [
        Object(id: "h1", type: "host", attrs: {"quota": 30}),
        Object(id: "h2", type: "host", attrs: {"quota": 30}),
        Object(id: "s1", type: "service"),
        Object(id: "s2", type: "service"),
        Object(id: "s3", type: "service"),
    ],
    init: ["on(s1, h1)", "on(s2, h1)", "on(s3, h2)", "disk(h2) = 20"],
    actions: [
        Action(name: "restart", params: [("h", "host")], text: "restart {h}",
            effect: ["forall(on(?s, ?h), pending(?s) => applied(?s), not pending(?s))",
                     "when(cold(?h) => not cold(?h))"],
            message: Some("restarted {h}")),
        Action(name: "clean", params: [("h", "host")], text: "clean {h}",
            pre: ["disk(?h) >= ?h.quota"], fail: {"disk(?h) >= ?h.quota": "nothing to clean"},
            effect: ["disk(?h) -= 30"], message: Some("disk of {h} now at {disk(h)}%")),
        Action(name: "fill", params: [("h", "host")], text: "fill {h}",
            pre: ["disk(?h) < 100"], effect: ["disk(?h) += 50"]),
        Action(name: "inspect", params: [("h", "host")], text: "inspect {h}",
            pre: ["not inspected(?h)"], effect: ["inspected(?h)"]),
        Action(name: "fix", params: [("s", "service")], text: "fix {s}",
            pre: ["broken(?s)"], effect: ["not broken(?s)"]),
        Action(name: "certify", params: [("h", "host")], text: "certify {h}",
            pre: ["not exists(on(?s, ?h), broken(?s))", "(inspected(?h) or cold(?h))"],
            fail: {"not exists(on(?s, ?h), broken(?s))": "a service on {h} is broken",
                   "(inspected(?h) or cold(?h))": "inspect {h} first"},
            effect: ["healthy(?h)"]),
    ],
    render: [
        Render(when: "disk(?h) > 0", line: "[{h}] host: disk {disk(h)}% used"),
        Render(when: "applied(?s)", line: "[{s}] service: settings applied"),
        Render(when: "(cold(?h) or healthy(?h))", line: "[{h}] host: quiet"),
    ],
    tasks: [
        TaskTemplate(id: "certify", instruction: "certify {h}",
            setup: [Choose(var: "h", type: "host", where: Some("on(s1, ?h)")),
                    OneOf([[Assert(["broken(s1)"])], [Assert(["broken(s2)", "cold(h1)"])]])],
            goal: ["healthy(?h)"],
            levels: [Level(difficulty: 1)]),
        TaskTemplate(id: "apply", instruction: "apply the settings on {h}",
            setup: [Choose(var: "h", type: "host", where: Some("on(s1, ?h)")),
                    Assert(["pending(s1)", "pending(s2)", "pending(s3)", "cold(?h)"])],
            goal: ["applied(s1), applied(s2), not cold(?h)"],
            levels: [Level(difficulty: 1)]),
        TaskTemplate(id: "clean", instruction: "get {h} below 15%",
            setup: [Choose(var: "h", type: "host", where: Some("on(s3, ?h)")),
                    Assert(["disk(?h) := 90"])],
            goal: ["disk(?h) < 15"],
            levels: [Level(difficulty: 1)]),
    ],
)"#;

fn compile(src: &str) -> Result<World, dreamgym_sim::scenario::ScenarioError> {
    World::from_str(Path::new("ops.ron"), src)
}

fn env() -> ScenarioEnv {
    ScenarioEnv::new(Arc::new(compile(OPS).unwrap()), "scenario:ops".into())
}

fn spec(template: &str) -> TaskSpec {
    TaskSpec {
        template: Some(template.into()),
        difficulty: Some(1),
        posed: None,
    }
}

/// Steps `action`, which must be admissible before and valid.
fn act(env: &mut ScenarioEnv, admissible: &[String], action: &str) -> dreamgym_sim::StepResult {
    assert!(
        admissible.iter().any(|a| a == action),
        "`{action}` not admissible: {admissible:?}"
    );
    let r = env.step(action).unwrap();
    assert_eq!(r.info.get("valid").map(String::as_str), Some("true"));
    r
}

#[test]
fn forall_applies_to_every_binding_and_when_only_where_its_condition_held() {
    let mut env = env();
    let obs = env.reset(&spec("apply"), 0).unwrap();
    assert!(obs.lines.iter().any(|l| l == "[h1] host: quiet"), "{obs:?}");
    let r = act(&mut env, &obs.admissible, "restart h1");
    let lines = &r.observation.lines;
    // s1 and s2 run on h1; s3 on h2 keeps its pending settings
    assert!(lines.contains(&"[s1] service: settings applied".to_string()));
    assert!(lines.contains(&"[s2] service: settings applied".to_string()));
    assert!(!lines.iter().any(|l| l.starts_with("[s3]")), "{lines:?}");
    // `when(cold(?h) => not cold(?h))` fired: h1 is no longer quiet
    assert!(
        !lines.contains(&"[h1] host: quiet".to_string()),
        "{lines:?}"
    );
    assert!(
        r.success && r.done,
        "goal: applied(s1), applied(s2), not cold"
    );
    assert_eq!(r.observation.feedback, "restarted h1");
}

#[test]
fn not_exists_and_alternatives_gate_an_action_with_their_messages() {
    let mut env = env();
    // the first alternative of the OneOf: s1 broken, h1 not cold
    let seeds: Vec<u64> = (0..40)
        .filter(|&s| {
            let obs = env.reset(&spec("certify"), s).unwrap();
            !obs.lines.iter().any(|l| l == "[h1] host: quiet")
        })
        .collect();
    assert!(!seeds.is_empty() && seeds.len() < 40, "OneOf never varied");
    let obs = env.reset(&spec("certify"), seeds[0]).unwrap();
    assert!(!obs.admissible.contains(&"certify h1".to_string()));
    let r = env.step("certify h1").unwrap();
    assert_eq!(r.observation.feedback, "a service on h1 is broken");
    let r = act(&mut env, &r.observation.admissible, "fix s1");
    // nothing broken now, but neither inspected nor cold: the alternatives' message
    assert_eq!(
        env.step("certify h1").unwrap().observation.feedback,
        "inspect h1 first"
    );
    let r = act(&mut env, &r.observation.admissible, "inspect h1");
    let r = act(&mut env, &r.observation.admissible, "certify h1");
    assert!(r.success);

    // the second alternative: s2 broken and h1 cold — cold satisfies the alternative, no inspect
    let other = (0..40).find(|s| !seeds.contains(s)).unwrap();
    let obs = env.reset(&spec("certify"), other).unwrap();
    let r = act(&mut env, &obs.admissible, "fix s2");
    let r = act(&mut env, &r.observation.admissible, "certify h1");
    assert!(r.success);
}

#[test]
fn numeric_fluents_compare_change_clamp_and_show_in_text() {
    let mut env = env();
    let obs = env.reset(&spec("clean"), 0).unwrap();
    assert!(obs.instruction == "get h2 below 15%", "{obs:?}");
    assert!(obs.lines.contains(&"[h2] host: disk 90% used".to_string()));
    // the other host keeps its default
    assert!(obs.lines.contains(&"[h1] host: disk 50% used".to_string()));
    let r = act(&mut env, &obs.admissible, "clean h2");
    assert_eq!(r.observation.feedback, "disk of h2 now at 60%");
    let r = act(&mut env, &r.observation.admissible, "fill h2");
    assert!(
        r.observation
            .lines
            .contains(&"[h2] host: disk 100% used".to_string())
    );
    // clamped at max, and the precondition `disk < 100` now fails
    assert!(!r.observation.admissible.contains(&"fill h2".to_string()));
    let mut adm = r.observation.admissible;
    for want in [70, 40, 10] {
        let r = act(&mut env, &adm, "clean h2");
        assert_eq!(r.observation.feedback, format!("disk of h2 now at {want}%"));
        assert_eq!(r.success, want < 15);
        adm = r.observation.admissible;
    }
    // below the quota attribute: cleaning fails with its message
    env.reset(&spec("clean"), 0).unwrap();
    assert_eq!(
        env.step("clean h1").unwrap().observation.feedback,
        "disk of h1 now at 20%"
    );
    let r = env.step("clean h1").unwrap();
    assert_eq!(r.observation.feedback, "nothing to clean");
    assert_eq!(r.info.get("valid").map(String::as_str), Some("false"));
}

#[test]
fn the_expert_plans_over_the_new_features() {
    let mut env = env();
    for template in ["certify", "apply", "clean"] {
        for seed in 0..10 {
            env.reset(&spec(template), seed).unwrap();
            let mut steps = 0;
            let done = loop {
                let Some(a) = env.expert_action().unwrap() else {
                    break false;
                };
                let r = env.step(&a).unwrap();
                steps += 1;
                if r.success {
                    break true;
                }
                assert!(!r.done && !r.truncated, "{template} seed {seed}: {r:?}");
            };
            assert!(done, "{template} seed {seed}: the expert found no plan");
            assert!(steps <= 4, "{template} seed {seed}: {steps} steps");
        }
    }
}

#[test]
fn one_of_is_deterministic_per_seed() {
    let mut a = env();
    let mut b = env();
    for seed in 0..20 {
        let x = a.reset(&spec("certify"), seed).unwrap();
        let y = b.reset(&spec("certify"), seed).unwrap();
        assert_eq!(x.lines, y.lines);
        assert_eq!(x.admissible, y.admissible);
    }
}

/// Replace `from` with `to` in OPS (which must contain it once) and compile: the error must name
/// the line holding `to`'s `at` part and say `message`.
fn broken(from: &str, to: &str, at: &str, message: &str) {
    assert_eq!(OPS.matches(from).count(), 1, "`{from}` not once in OPS");
    let src = OPS.replacen(from, to, 1);
    let err = match compile(&src) {
        Ok(_) => panic!("accepted: {to}"),
        Err(e) => e,
    };
    assert!(
        err.message.contains(message),
        "{to}: got `{}`, want `{message}`",
        err.message
    );
    let line = src.lines().nth(err.line - 1).unwrap_or("");
    assert!(
        line.contains(at),
        "{to}: error at line {} `{line}`, want the line with `{at}` ({err})",
        err.line
    );
}

#[test]
fn new_features_report_located_errors() {
    broken(
        "\"when(cold(?h) => not cold(?h))\"",
        "\"when(on(?t, ?h) => not cold(?h))\"",
        "when(on(?t",
        "use `forall(...)`",
    );
    broken(
        "\"(inspected(?h) or cold(?h))\"],",
        "\"inspected(?h) or cold(?h)\"],",
        "inspected(?h) or cold(?h)\"]",
        "needs parentheses",
    );
    broken(
        "pre: [\"disk(?h) < 100\"]",
        "pre: [\"disk(?h)\"]",
        "pre: [\"disk(?h)\"]",
        "`disk` is a numeric fluent",
    );
    broken(
        "pre: [\"broken(?s)\"]",
        "pre: [\"broken(?s) > 2\"]",
        "broken(?s) > 2",
        "`broken` is a predicate, not a numeric fluent",
    );
    broken(
        "text: \"fill {h}\"",
        "text: \"fill {h} at {disk(h)}\"",
        "fill {h} at",
        "fluent values can be shown in render lines and action messages only",
    );
    broken(
        "effect: [\"disk(?h) += 50\"]",
        "effect: [\"disk(?h) += 2.5\"]",
        "2.5",
        "fluents hold integers",
    );
    broken(
        "pre: [\"not inspected(?h)\"]",
        "pre: [\"disk(?h) += 1\"]",
        "disk(?h) += 1",
        "belongs in effects",
    );
    broken(
        "effect: [\"not broken(?s)\"]",
        "effect: [\"(broken(?s) or pending(?s))\"]",
        "(broken(?s) or pending(?s))",
        "effects must be atoms",
    );
    broken(
        "\"disk(h2) = 20\"",
        "\"disk(h2) = 120\"",
        "disk(h2) = 120",
        "outside the range of `disk`",
    );
    broken(
        "Predicate(name: \"cold\"",
        "Predicate(name: \"or\"",
        "name: \"or\"",
        "is a keyword",
    );
    broken(
        "[Assert([\"broken(s2)\", \"cold(h1)\"])]",
        "[Choose(var: \"x\", type: \"service\")]",
        "OneOf",
        "every alternative must choose the same variables",
    );
    broken(
        "\"forall(on(?s, ?h), pending(?s) => applied(?s), not pending(?s))\"",
        "\"forall(on(?s, ?h) => not on(_, ?h))\"",
        "forall(on(?s, ?h) => not on(_",
        "`_` deletes cannot appear inside when/forall",
    );
    broken(
        "\"not exists(on(?s, ?h), broken(?s))\", \"(",
        "\"not exists(on(?s, ?h) broken(?s))\", \"(",
        "not exists(on(?s, ?h) broken",
        "syntax: expected `,` or `)` closing `not exists(`",
    );
}

#[test]
fn two_levels_with_one_difficulty_are_refused_at_the_template() {
    let src = OPS.replace(
        r#"goal: ["disk(?h) < 15"],
            levels: [Level(difficulty: 1)]),"#,
        r#"goal: ["disk(?h) < 15"],
            levels: [Level(difficulty: 1), Level(difficulty: 1, max_steps: Some(9))]),"#,
    );
    assert_ne!(src, OPS);
    let e = compile(&src).unwrap_err().to_string();
    assert!(e.contains("two levels with difficulty 1"), "{e}");
    assert!(e.contains("ops.ron:"), "the file and line are named: {e}");
}
