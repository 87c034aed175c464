//! Bridge tests: the shipped Python bridge (BabyAI, TextWorldExpress) and failure handling with
//! small fake bridges. Needs the venv from `scripts/setup-venv.sh` (the test script makes it and
//! exports `DREAMGYM_PYTHON`).

use dreamgym_sim::{BridgeConfig, BridgeEnv, Env, TaskSpec};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/python.rs"]
mod python_support;
use python_support::python;

fn shipped(name: &str) -> BridgeEnv {
    let dir = tempfile::tempdir().unwrap().keep();
    BridgeEnv::new(
        format!("bridge:{name}"),
        name,
        BridgeConfig::python(&python(), &dir).unwrap(),
    )
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dreamgym"));
    c.env("DREAMGYM_PYTHON", python());
    c
}

fn collect(
    env: &str,
    policy: &str,
    episodes: usize,
    out: &Path,
    extra: &[&str],
) -> (bool, String, String) {
    let o = bin()
        .args(["collect", "--env", env, "--policy", policy, "--episodes"])
        .arg(episodes.to_string())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn babyai_expert_succeeds_on_every_episode() {
    let dir = tempfile::tempdir().unwrap();
    for level in ["BabyAI-GoToLocal-v0", "BabyAI-PickupLoc-v0"] {
        let out = dir.path().join("x.jsonl");
        let (ok, stdout, err) = collect(
            &format!("bridge:{level}"),
            "expert",
            60,
            &out,
            &["--workers", "2", "--seed", "4"],
        );
        assert!(ok, "{err}");
        assert!(
            stdout.contains("wrote 60 episodes") && stdout.contains("success 100.0%"),
            "{level}: {stdout}"
        );
        let ts = dreamgym_buffer::jsonl::read_file(&out).unwrap();
        let t = &ts[0];
        assert_eq!(t.env_id, format!("bridge:{level}"));
        assert!(!t.steps[0].state.instruction.is_empty());
        assert_eq!(t.steps[0].state.admissible.len(), 7);
        assert!(
            t.steps
                .iter()
                .all(|s| s.state.lines.iter().all(|l| l.starts_with('['))),
            "{:?}",
            t.steps[0].state.lines
        );
        assert_eq!(t.steps.last().unwrap().reward, 1.0);
    }
}

#[test]
fn same_file_for_any_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    assert!(
        collect(
            "bridge:BabyAI-GoToLocal-v0",
            "noisy-expert:0.3",
            12,
            &a,
            &["--workers", "1"]
        )
        .0
    );
    assert!(
        collect(
            "bridge:BabyAI-GoToLocal-v0",
            "noisy-expert:0.3",
            12,
            &b,
            &["--workers", "3"]
        )
        .0
    );
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn textworld_express_adapter_runs_and_its_expert_succeeds_the_same_way_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("twx.jsonl");
    let env = "bridge:twx:coin:numLocations=5,includeDoors=1";
    let (ok, stdout, err) = collect(env, "expert", 10, &out, &[]);
    assert!(ok, "{err}");
    assert!(stdout.contains("success 100.0%"), "{stdout}");
    // coin's own gold path is a random walk from an unseeded generator; the bridge's explorer
    // gives the same episodes for the same seed, and carries on after a noisy expert's random steps
    let again = dir.path().join("again.jsonl");
    for policy in ["expert", "noisy-expert:0.5"] {
        assert!(collect(env, policy, 12, &out, &[]).0);
        let (ok, _, err) = collect(env, policy, 12, &again, &[]);
        assert!(ok, "{err}");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&again).unwrap(),
            "{policy}"
        );
    }
    let (ok, _, err) = collect(env, "random", 3, &out, &[]);
    assert!(ok, "{err}");
    let ts = dreamgym_buffer::jsonl::read_file(&out).unwrap();
    assert!(
        ts[0].steps[0]
            .state
            .admissible
            .iter()
            .any(|a| a == "look around")
    );
    // `dreamgym run` resets with 64-bit seeds; TextWorldExpress takes a Java int
    let mut env = shipped("twx:coin:numLocations=5,includeDoors=1");
    let obs = env
        .reset(&TaskSpec::default(), 0x9e37_79b9_7f4a_7c15)
        .unwrap();
    assert!(!obs.lines.is_empty());
}

/// The native model on TextWorldExpress coin worlds it never saw (issue 19's development set,
/// `scripts/twx-fidelity.sh`): trained on 210 trajectories of seed-1 worlds, evaluated on 120 of
/// seed-2 worlds. Measured 2026-12-04 with the bridge's deterministic coin expert and the
/// native model's undoing pairs: unseen next-state exact 0.809 (0.728 before the pairs;
/// revealing 0.027), reward accuracy 0.987, false success 0.000 (the same every time); the
/// threshold holds what is reached, not the target (0.9 x (1 - revealing)).
#[test]
fn the_native_model_on_unseen_textworld_express_coin_worlds() {
    let dir = tempfile::tempdir().unwrap();
    let env = "bridge:twx:coin:numLocations=5,includeDoors=1";
    let (train, held) = (
        dir.path().join("train.jsonl"),
        dir.path().join("held.jsonl"),
    );
    let part = dir.path().join("part.jsonl");
    for (file, episodes, seed) in [(&train, 70, "1"), (&held, 40, "2")] {
        let mut all = vec![];
        for policy in ["expert", "noisy-expert:0.3", "random"] {
            let (ok, _, err) = collect(env, policy, episodes, &part, &["--seed", seed]);
            assert!(ok, "{err}");
            all.extend(std::fs::read(&part).unwrap());
        }
        std::fs::write(file, all).unwrap();
    }
    let o = bin()
        .args(["model", "eval", "--json", "--train"])
        .arg(&train)
        .arg("--heldout")
        .arg(&held)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let unseen = &v["unseen_tasks"];
    let get = |k: &str| unseen[k].as_f64().unwrap_or_else(|| panic!("no {k}: {v}"));
    assert!(get("transitions") > 1000.0, "{v}");
    assert!(get("next_state_exact") >= 0.78, "{v}");
    assert!(get("reward_accuracy") >= 0.98, "{v}");
    assert!(get("false_success_rate") <= 0.005, "{v}");
}

#[test]
fn killing_the_child_gives_a_clear_error_and_a_restarted_env_within_2s() {
    let mut env = shipped("BabyAI-GoToLocal-v0");
    env.reset(&TaskSpec::default(), 1).unwrap();
    env.step("turn left").unwrap();
    let pid = env.child_pid().unwrap();
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let t = Instant::now();
    let err = env.step("turn left").unwrap_err().to_string();
    assert!(
        err.contains("bridge:BabyAI-GoToLocal-v0") && err.contains("exited"),
        "{err}"
    );
    assert!(err.contains("restarted"), "{err}");
    // the episode in flight is gone; a reset works on the fresh child
    assert!(env.step("turn left").is_err());
    env.reset(&TaskSpec::default(), 2).unwrap();
    env.step("go forward").unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "recovery took {:?}",
        t.elapsed()
    );
    assert_eq!(env.restarts(), 1);
    assert_ne!(env.child_pid(), Some(pid));
}

#[test]
fn unknown_actions_and_levels_are_clear_errors() {
    let mut env = shipped("BabyAI-GoToLocal-v0");
    env.reset(&TaskSpec::default(), 1).unwrap();
    let err = env.step("fly").unwrap_err().to_string();
    assert!(err.contains("unknown action 'fly'"), "{err}");
    env.step("turn left").unwrap(); // the bridge is still fine
    let mut bad = shipped("BabyAI-NoSuchLevel-v0");
    let err = bad.reset(&TaskSpec::default(), 1).unwrap_err().to_string();
    assert!(err.contains("cannot make BabyAI-NoSuchLevel-v0"), "{err}");
}

/// A fake bridge (plain python3, no packages) whose `step` misbehaves in the given way.
fn fake(dir: &Path, misbehave: &str) -> BridgeConfig {
    let script = format!(
        r#"
import json, sys, time
print(json.dumps({{"type": "hello", "protocol": 1}}), flush=True)
n = 0
for line in sys.stdin:
    req = json.loads(line)
    obs = {{"lines": ["[x] thing: a thing"], "instruction": "do it", "admissible": ["a"]}}
    if req["op"] == "reset":
        n = 0
        print(json.dumps({{"ok": True, "observation": obs, "task": {{"id": "t"}}}}), flush=True)
    elif req["op"] == "step":
        n += 1
        if n >= 2:
            print("fake bridge about to misbehave", file=sys.stderr, flush=True)
            {misbehave}
        print(json.dumps({{"ok": True, "observation": obs, "reward": 0, "done": n >= 5}}), flush=True)
"#
    );
    let p: PathBuf = dir.join(format!("fake{}.py", misbehave.len()));
    std::fs::write(&p, script).unwrap();
    let mut cfg = BridgeConfig::new(vec!["python3".into(), p.display().to_string()]);
    cfg.step_timeout = Duration::from_millis(800);
    cfg
}

#[test]
fn a_hung_child_times_out_and_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = BridgeEnv::new("bridge:fake", "fake", fake(dir.path(), "time.sleep(60)"));
    env.reset(&TaskSpec::default(), 0).unwrap();
    env.step("a").unwrap();
    let t = Instant::now();
    let err = env.step("a").unwrap_err().to_string();
    assert!(err.contains("did not answer step within 0.8s"), "{err}");
    assert!(
        err.contains("fake bridge about to misbehave"),
        "stderr tail missing: {err}"
    );
    assert!(t.elapsed() < Duration::from_secs(3));
    env.reset(&TaskSpec::default(), 0).unwrap();
    env.step("a").unwrap();
}

#[test]
fn bad_json_is_a_protocol_violation() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = BridgeEnv::new(
        "bridge:fake",
        "fake",
        fake(
            dir.path(),
            "print('this is not json', flush=True); continue",
        ),
    );
    env.reset(&TaskSpec::default(), 0).unwrap();
    env.step("a").unwrap();
    let err = env.step("a").unwrap_err().to_string();
    assert!(
        err.contains("protocol violation") && err.contains("this is not json"),
        "{err}"
    );
}

#[test]
fn a_child_dying_mid_collection_leaves_only_complete_episodes() {
    let dir = tempfile::tempdir().unwrap();
    // dies on the 2nd step of every episode after the first three resets
    let script = dir.path().join("dying.py");
    std::fs::write(
        &script,
        r#"
import json, sys
print(json.dumps({"type": "hello", "protocol": 1}), flush=True)
resets = n = 0
for line in sys.stdin:
    req = json.loads(line)
    obs = {"lines": ["[x] thing: a thing"], "instruction": "do it", "admissible": ["a"]}
    if req["op"] == "reset":
        resets += 1; n = 0
        print(json.dumps({"ok": True, "observation": obs, "task": {"id": "t%d" % resets}}), flush=True)
    elif req["op"] == "step":
        n += 1
        if resets > 3 and n == 2:
            sys.exit(3)
        print(json.dumps({"ok": True, "observation": obs, "reward": 1 if n == 3 else 0, "done": n == 3, "success": n == 3}), flush=True)
"#,
    )
    .unwrap();
    let out = dir.path().join("t.jsonl");
    let cmd = format!("python3 {}", script.display());
    let (ok, _, err) = collect("bridge:dying", "random", 10, &out, &["--bridge-cmd", &cmd]);
    assert!(!ok);
    assert!(err.contains("episode 3") && err.contains("exited"), "{err}");
    let ts = dreamgym_buffer::jsonl::read_file(&out).unwrap();
    assert_eq!(ts.len(), 3);
    assert!(ts.iter().all(|t| t.steps.len() == 3 && t.outcome.success));
    let buf = dir.path().join("b.dglog");
    assert!(
        bin()
            .args(["buffer", "import"])
            .arg(&buf)
            .arg(&out)
            .status()
            .unwrap()
            .success()
    );
    let o = bin()
        .args(["buffer", "stats", "--json"])
        .arg(&buf)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stats"]["records"], 9);
}

#[test]
fn library_prints_do_not_reach_the_protocol_channel() {
    // BabyAI's level generator prints "Sampling rejected: ..." for this seed (seen on stdout when
    // run without the bridge); the bridge must keep it off the protocol stream.
    let mut env = shipped("BabyAI-GoToLocal-v0");
    for seed in 8..16 {
        env.reset(&TaskSpec::default(), seed).unwrap();
        env.step("go forward").unwrap();
    }
    assert_eq!(env.restarts(), 0);
}

#[test]
fn difficulty_knobs_make_harder_levels_the_bot_still_solves() {
    use dreamgym_curriculum::{KnobVariants, TaskVariant, VariantGenerator};
    let mut env = shipped("BabyAI-GoToLocal-v0");
    let at = |d| TaskSpec {
        template: None,
        difficulty: Some(d),
        posed: None,
    };
    // each level adds distractors: the task names the knob's value
    let start = |env: &mut BridgeEnv, d: u32| {
        env.reset(&at(d), 7).unwrap();
        let t = env.task().unwrap().clone();
        (t, env.task().unwrap().params.get("num_dists").cloned())
    };
    let (t1, n1) = start(&mut env, 1);
    assert_eq!(
        t1.id, "BabyAI-GoToLocal-v0/s7",
        "level 1 is the env as named"
    );
    assert_eq!((t1.difficulty, n1), (1, None));
    let (t3, n3) = start(&mut env, 3);
    assert_eq!(t3.id, "BabyAI-GoToLocal-v0/d3/s7");
    assert_eq!(t3.difficulty, 3);
    assert_eq!(
        n3.as_deref(),
        Some("12"),
        "GoToLocal's 8 distractors + 2 per level above 1"
    );
    let err = env.reset(&at(5), 7).unwrap_err().to_string();
    assert!(
        err.contains("difficulty must be an integer from 1 to 4"),
        "{err}"
    );
    let mut knobless = shipped("BabyAI-PickupLoc-v0");
    let err = knobless.reset(&at(2), 7).unwrap_err().to_string();
    assert!(err.contains("has no difficulty knob"), "{err}");

    // the curriculum's generator climbs the knob; BabyAI's bot vouches for each level
    let mut g = KnobVariants::new(Box::new(shipped("BabyAI-GoToLocal-v0")), 4);
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(2);
    let mut v = TaskVariant {
        template: None,
        difficulty: 1,
        seed: 0,
        posed: None,
    };
    for d in 2..=4 {
        v = g.harder(&v, &mut rng).unwrap();
        assert_eq!(v.difficulty, d);
        assert!(g.feasible(&v), "the bot solves GoToLocal at difficulty {d}");
    }
    assert!(g.harder(&v, &mut rng).is_none());
    let mut none = KnobVariants::new(Box::new(shipped("BabyAI-PickupLoc-v0")), 4);
    assert!(
        !none.feasible(&TaskVariant {
            template: None,
            difficulty: 2,
            seed: 1,
            posed: None,
        }),
        "a level the adapter cannot make harder is not feasible"
    );
}

#[test]
fn the_native_model_follows_babyai_objects_through_egocentric_moves() {
    // stable object ids (the adapter) + per-line rewrites by shape (the native model): moves
    // learnt on some objects and positions predict the view after moves of others
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.jsonl");
    let mut all = String::new();
    for (policy, seed) in [("expert", 1), ("noisy-expert:0.3", 2), ("random", 3)] {
        let out = dir.path().join(format!("{seed}.jsonl"));
        let seed = seed.to_string();
        let (ok, _, err) = collect(
            "bridge:BabyAI-GoToLocal-v0",
            policy,
            50,
            &out,
            &["--seed", &seed],
        );
        assert!(ok, "{err}");
        all.push_str(&std::fs::read_to_string(&out).unwrap());
    }
    std::fs::write(&train, all).unwrap();
    let held = dir.path().join("held.jsonl");
    let (ok, _, err) = collect(
        "bridge:BabyAI-GoToLocal-v0",
        "noisy-expert:0.3",
        30,
        &held,
        &["--seed", "1000"],
    );
    assert!(ok, "{err}");
    let eval = |extra: &[&str]| -> serde_json::Value {
        let o = bin()
            .args(["model", "eval", "--json", "--train"])
            .arg(&train)
            .arg("--heldout")
            .arg(&held)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let with = eval(&[]);
    let without = eval(&["--no-rules"]);
    let exact = |v: &serde_json::Value| v["next_state_exact"].as_f64().unwrap();
    eprintln!(
        "next-state exact {:.3}, memory only {:.3}",
        exact(&with),
        exact(&without)
    );
    assert!(exact(&with) >= 0.45, "{with}");
    assert!(exact(&with) >= exact(&without) + 0.2, "{with} vs {without}");
    assert!(with["reward_accuracy"].as_f64().unwrap() >= 0.9, "{with}");
    assert_eq!(with["false_success_rate"].as_f64().unwrap(), 0.0, "{with}");
}
