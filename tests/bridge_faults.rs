//! Bridges that misbehave in ways a step timeout cannot see: replies out of step with their
//! requests, an env that never ends, children that start processes of their own. Fake bridges
//! are small Python scripts (plain `python3`, no packages).

use dreamgym_sim::{BridgeConfig, BridgeEnv, Env, TaskSpec};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A fake bridge speaking `protocol`. `step_reply` is Python run for each step with `n` (the step
/// number in the episode), `rid` (the request's id) and `send(obj)` in scope.
fn fake_bridge(dir: &Path, name: &str, protocol: u32, step_reply: &str) -> Vec<String> {
    let script = format!(
        r#"
import json, sys
def send(obj):
    print(json.dumps(obj), flush=True)
send({{"type": "hello", "protocol": {protocol}}})
n = 0
obs = {{"lines": ["[x] thing: a thing"], "instruction": "do it", "admissible": ["a"]}}
for line in sys.stdin:
    req = json.loads(line)
    rid = req.get("id")
    if req["op"] == "reset":
        n = 0
        send({{"id": rid, "ok": True, "observation": obs, "task": {{"id": "t"}}}})
    elif req["op"] == "step":
        n += 1
{body}
"#,
        body = step_reply
            .lines()
            .map(|l| format!("        {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let p = dir.join(format!("{name}.py"));
    std::fs::write(&p, script).unwrap();
    vec!["python3".into(), p.display().to_string()]
}

fn env(command: Vec<String>) -> BridgeEnv {
    let mut cfg = BridgeConfig::new(command);
    cfg.step_timeout = Duration::from_secs(5);
    BridgeEnv::new("bridge:fake", "fake", cfg)
}

const STEP: &str =
    r#"reply = {"id": rid, "ok": True, "observation": obs, "reward": 0, "done": n >= 5}"#;

#[test]
fn a_repeated_reply_is_caught_at_the_next_request_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // step 2's reply is sent twice
    let body = format!("{STEP}\nsend(reply)\nif n == 2:\n    send(reply)");
    for protocol in [1, 2] {
        let mut env = env(fake_bridge(
            dir.path(),
            &format!("dup{protocol}"),
            protocol,
            &body,
        ));
        env.reset(&TaskSpec::default(), 0).unwrap();
        env.step("a").unwrap();
        let err = if protocol == 1 {
            // without ids, the line right behind a reply is watched for
            env.step("a").unwrap_err().to_string()
        } else {
            env.step("a").unwrap();
            std::thread::sleep(Duration::from_millis(200)); // the duplicate has arrived
            env.step("a").unwrap_err().to_string()
        };
        assert!(
            err.contains("repeated reply") || err.contains("nobody asked for"),
            "protocol {protocol}: {err}"
        );
        // restarted in step: a fresh episode runs
        env.reset(&TaskSpec::default(), 0).unwrap();
        env.step("a").unwrap();
        assert_eq!(env.restarts(), 1);
    }
}

/// A protocol 1 child that repeats a reply, stepped at once (no pause for the duplicate to
/// arrive): the repeated line is never taken as the answer to the next step, in any of 8 runs.
#[test]
fn a_repeated_protocol_1_reply_is_never_recorded_as_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let body = format!("{STEP}\nsend(reply)\nif n == 2:\n    send(reply)");
    let command = fake_bridge(dir.path(), "dup_at_once", 1, &body);
    for run in 0..8 {
        let mut env = env(command.clone());
        env.reset(&TaskSpec::default(), 0).unwrap();
        env.step("a").unwrap();
        // the duplicate of step 2's reply: caught with step 2 (it cannot be told from the
        // first), or at the latest before step 3's reply is read
        let second = env.step("a");
        let err = match second {
            Err(e) => e.to_string(),
            Ok(_) => env.step("a").unwrap_err().to_string(),
        };
        assert!(
            err.contains("out of step") || err.contains("repeated reply"),
            "run {run}: {err}"
        );
    }
}

#[test]
fn a_late_reply_is_caught_by_its_id_at_once_with_protocol_2() {
    let dir = tempfile::tempdir().unwrap();
    // on step 2 the child first answers the previous request again (old id), then this one
    let body = format!(
        "{STEP}\nif n == 2:\n    send(dict(reply, id=rid - 1))\n    send(reply)\nelse:\n    send(reply)"
    );
    let mut env = env(fake_bridge(dir.path(), "late", 2, &body));
    env.reset(&TaskSpec::default(), 0).unwrap();
    env.step("a").unwrap();
    let err = env.step("a").unwrap_err().to_string();
    assert!(
        err.contains("carries id") && err.contains("out of step"),
        "{err}"
    );
    // a reply with no id at all is refused too
    let body = format!("{STEP}\ndel reply['id']\nsend(reply)");
    let mut env = self::env(fake_bridge(dir.path(), "noid", 2, &body));
    env.reset(&TaskSpec::default(), 0).unwrap();
    let err = env.step("a").unwrap_err().to_string();
    assert!(err.contains("carries id (none)"), "{err}");
}

#[test]
fn the_shipped_bridge_speaks_protocol_2() {
    // its hello and the echo of ids, without needing its packages: the hello comes before any
    // import of an env library, and a bad request is answered with the request's id
    let dir = tempfile::tempdir().unwrap();
    let script = dreamgym_sim::bridge::write_embedded_bridge(dir.path()).unwrap();
    let out = Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let mut stdin = c.stdin.take().unwrap();
            stdin.write_all(b"{\"op\":\"fly\",\"id\":41}\n{\"op\":\"close\",\"id\":42}\n")?;
            drop(stdin);
            c.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["protocol"], 2, "{text}");
    assert_eq!(lines[1]["id"], 41, "{text}");
    assert_eq!(lines[1]["ok"], false, "{text}");
    assert_eq!(lines[2]["id"], 42, "{text}");
}

#[test]
fn collect_ends_on_a_bridge_that_never_reports_done() {
    let dir = tempfile::tempdir().unwrap();
    let never = r#"send({"id": rid, "ok": True, "observation": obs, "reward": 0, "done": False})"#;
    let cmd = fake_bridge(dir.path(), "never", 2, never).join(" ");
    let out = dir.path().join("never.jsonl");
    for (max_steps, want) in [
        (None, dreamgym_sim::policy::MAX_EPISODE_STEPS),
        (Some(7), 7),
    ] {
        let t = Instant::now();
        let mut c = Command::new(env!("CARGO_BIN_EXE_dreamgym"));
        c.args(["collect", "--env", "bridge:never", "--policy", "random"])
            .args(["--episodes", "2", "--bridge-cmd", &cmd, "--out"])
            .arg(&out);
        if let Some(m) = max_steps {
            c.args(["--max-steps", &m.to_string()]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
        let ts = dreamgym_buffer::jsonl::read_file(&out).unwrap();
        assert_eq!(ts.len(), 2);
        for t in &ts {
            assert_eq!(t.steps.len(), want);
            assert!(t.steps.last().unwrap().truncated && !t.outcome.success);
        }
    }
    let o = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .args(["collect", "--env", "bridge:never", "--max-steps", "0"])
        .args(["--bridge-cmd", &cmd, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--max-steps"));
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet: it runs no more).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if process_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[cfg(target_os = "linux")]
#[test]
fn a_bridge_childs_own_children_die_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let hang = "if n >= 2:\n    import time; time.sleep(60)\nsend({\"id\": rid, \"ok\": True, \"observation\": obs, \"reward\": 0, \"done\": False})";
    let bridge = fake_bridge(dir.path(), "parent", 2, hang).join(" ");
    let pids = dir.path().join("pids");
    // the bridge starts a helper of its own (as TWX starts a JVM) and records its pid
    let line = format!("sleep 300 & echo $! >> {}; exec {bridge}", pids.display());
    let mut cfg = BridgeConfig::new(vec!["sh".into(), "-c".into(), line]);
    cfg.step_timeout = Duration::from_millis(500);
    let read_pids = || -> Vec<u32> {
        std::fs::read_to_string(&pids)
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    };
    {
        let mut env = BridgeEnv::new("bridge:fake", "fake", cfg);
        env.reset(&TaskSpec::default(), 0).unwrap();
        env.step("a").unwrap();
        // the hang kills the child and starts a second one
        assert!(env.step("a").is_err());
        let first = read_pids()[0];
        assert!(
            wait_gone(first),
            "the first child's helper {first} survived its restart"
        );
        let second = *read_pids().last().unwrap();
        assert_ne!(first, second);
        assert!(!process_gone(second));
    } // drop closes the second child
    let second = *read_pids().last().unwrap();
    assert!(
        wait_gone(second),
        "helper {second} survived the bridge's close"
    );
}

#[test]
fn collect_skips_and_counts_instances_the_expert_cannot_solve() {
    let dir = tempfile::tempdir().unwrap();
    // the expert has no plan on odd reset seeds; on even ones it plans "a" and the episode ends
    let script = dir.path().join("picky.py");
    std::fs::write(
        &script,
        r#"
import json, sys
def send(obj):
    print(json.dumps(obj), flush=True)
send({"type": "hello", "protocol": 2})
obs = {"lines": ["[x] thing: a thing"], "instruction": "do it", "admissible": ["a", "b"]}
seed = 0
for line in sys.stdin:
    req = json.loads(line)
    rid = req.get("id")
    if req["op"] == "reset":
        seed = req["seed"]
        send({"id": rid, "ok": True, "observation": obs, "task": {"id": "t%d" % seed}})
    elif req["op"] == "expert":
        send({"id": rid, "ok": True, "action": None if seed % 2 else "a"})
    elif req["op"] == "step":
        send({"id": rid, "ok": True, "observation": obs, "reward": 1, "done": True, "success": True})
"#,
    )
    .unwrap();
    let out = dir.path().join("picky.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .args(["collect", "--env", "bridge:picky", "--policy", "expert"])
        .args(["--episodes", "6", "--bridge-cmd"])
        .arg(format!("python3 {}", script.display()))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("wrote 3 episodes"), "{stdout}");
    assert!(stdout.contains("skipped 3 task instances"), "{stdout}");
    let ts = dreamgym_buffer::jsonl::read_file(&out).unwrap();
    assert!(ts.iter().all(|t| t.seed % 2 == 0 && t.outcome.success));
}
