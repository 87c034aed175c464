//! `dreamgym serve` end to end: the real `dreamgym` binary serving, the real OpenEnv Python client
//! (`openenv-core` 0.3, from the venv of `scripts/setup-venv.sh`) playing, and the episodes checked
//! against the same episodes played in-process; then load, limits, abuse and crashes, with the
//! durable buffer read back after each.

use dreamgym::support::envs::EnvFactory;
use dreamgym_buffer::{BufferConfig, Provenance, ReplayBuffer};
use dreamgym_sim::{Env, TaskSpec};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/python.rs"]
mod python_support;
use python_support::python;

/// A `dreamgym serve` child on a free loopback port.
struct Server {
    child: Child,
    url: String,
    port: u16,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    fn start_with_env(args: &[&str], vars: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
            .envs(vars.iter().copied())
            .arg("serve")
            .args(args)
            .args(["--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the server printed no address");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        Self { child, url, port }
    }

    /// GET `path` as JSON (a raw HTTP/1.1 request: no client library needed for this).
    fn get(&self, path: &str) -> Value {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {text}"))
    }

    fn py(&self, mode: &str, extra: &[&str]) -> Value {
        let o = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openenv_check.py"))
            .args([mode, "--url", &self.url])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openenv_check.py {mode} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// SIGTERM, and the exit status must be success within 20 s.
    fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "the server exited with {st} after SIGTERM");
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the server did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scenario(name: &str) -> String {
    format!("scenario:{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Every episode of the log: its steps are t = 0..n with n its outcome's length; returns
/// (episodes by `ended` tag, records by provenance).
fn read_buffer(
    path: &Path,
) -> (
    BTreeMap<String, usize>,
    HashMap<Provenance, usize>,
    ReplayBuffer,
) {
    let (buf, recovery) = ReplayBuffer::open(path, BufferConfig::default()).unwrap();
    let mut episodes: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    let mut ended = BTreeMap::new();
    let mut prov = HashMap::new();
    for (_, r) in buf.iter() {
        episodes.entry(r.episode.id).or_default().push(r.t);
        *prov.entry(r.provenance()).or_default() += 1;
    }
    for (_, r) in buf.iter() {
        if r.t == 0 {
            let ts = &episodes[&r.episode.id];
            assert_eq!(
                ts,
                &(0..r.episode.outcome.length).collect::<Vec<_>>(),
                "episode {} is not whole ({recovery})",
                r.episode.id
            );
            let tag = r
                .episode
                .tags
                .get("ended")
                .cloned()
                .unwrap_or("seed".into());
            *ended.entry(tag).or_default() += 1;
        }
    }
    (ended, prov, buf)
}

/// Compare a transcript of the Python client with `env` playing the same episodes.
fn check_transcript(env: &mut dyn Env, episodes: &Value, spec: &TaskSpec) -> usize {
    let fields = |o: &Value| -> (Vec<String>, String, Vec<String>, String) {
        (
            serde_json::from_value(o["lines"].clone()).unwrap(),
            o["instruction"].as_str().unwrap().into(),
            serde_json::from_value(o["admissible"].clone()).unwrap(),
            o["feedback"].as_str().unwrap().into(),
        )
    };
    let mut steps = 0;
    for ep in episodes.as_array().unwrap() {
        let seed = ep["seed"].as_u64().unwrap();
        let obs = env.reset(spec, seed).unwrap();
        let served = &ep["reset"];
        assert_eq!(served["reward"], Value::Null);
        assert_eq!(served["done"], false);
        assert_eq!(
            fields(&served["observation"]),
            (obs.lines, obs.instruction, obs.admissible, obs.feedback),
            "reset seed {seed}"
        );
        assert_eq!(
            served["observation"]["task_id"].as_str(),
            env.task().map(|t| t.id.as_str())
        );
        for (t, s) in ep["steps"].as_array().unwrap().iter().enumerate() {
            let r = env.step(s["action"].as_str().unwrap()).unwrap();
            let o = &s["observation"];
            let here = format!("seed {seed} step {t}");
            assert_eq!(s["reward"].as_f64().unwrap() as f32, r.reward, "{here}");
            assert_eq!(
                s["done"].as_bool().unwrap(),
                r.done || r.truncated,
                "{here}"
            );
            assert_eq!(o["truncated"].as_bool().unwrap(), r.truncated, "{here}");
            assert_eq!(o["success"].as_bool().unwrap(), r.success, "{here}");
            assert_eq!(o["step"].as_u64().unwrap() as usize, t + 1, "{here}");
            let ob = r.observation;
            assert_eq!(
                fields(o),
                (ob.lines, ob.instruction, ob.admissible, ob.feedback),
                "{here}"
            );
            steps += 1;
        }
        assert_eq!(
            ep["steps"].as_array().unwrap().last().unwrap()["done"],
            true
        );
    }
    steps
}

fn steps_in(episodes: &Value) -> usize {
    episodes
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["steps"].as_array().unwrap().len())
        .sum()
}

#[test]
fn a_served_scenario_plays_as_in_process_with_the_python_client() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("serve.dglog");
    let env = scenario("household.ron");
    let server = Server::start(&[&env, "--buffer", buffer.to_str().unwrap()]);
    let sync = server.py(
        "play",
        &["--episodes", "4", "--seed", "10", "--client", "sync"],
    );
    let asyn = server.py(
        "play",
        &["--episodes", "3", "--seed", "40", "--client", "async"],
    );
    let http = server.py("http", &[]);
    let stats = server.get("/stats");
    assert_eq!(stats["sessions"], 1, "the HTTP session is live: {stats}");
    server.stop();

    let factory = EnvFactory::new(&env, None).unwrap();
    let mut real = factory.open();
    let spec = TaskSpec::default();
    let steps = check_transcript(real.as_mut(), &sync, &spec)
        + check_transcript(real.as_mut(), &asyn, &spec);
    assert_eq!(steps, steps_in(&sync) + steps_in(&asyn));

    // every episode is in the buffer: 7 over WebSocket, 1 + 1 (reset again, no steps: not
    // recorded) over HTTP
    let (ended, prov, buf) = read_buffer(&buffer);
    let http_steps = http["http_steps"].as_u64().unwrap() as usize;
    assert_eq!(prov.get(&Provenance::Real), Some(&(steps + http_steps)));
    assert_eq!(prov.get(&Provenance::Synthetic), None);
    assert_eq!(ended.values().sum::<usize>(), 8, "{ended:?}");
    assert!(
        buf.iter()
            .all(|(_, r)| r.episode.tags.contains_key("session")
                && r.episode.policy.starts_with("client:")
                && r.episode.env_id == env)
    );
}

#[test]
fn a_served_synthetic_env_plays_as_in_process_and_reports_to_its_curriculum() {
    let dir = tempfile::tempdir().unwrap();
    let env = scenario("keys_doors.ron");
    let offline = dir.path().join("offline.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .args(["collect", "--env", &env, "--policy", "noisy-expert:0.3"])
        .args([
            "--episodes",
            "60",
            "--difficulty",
            "1",
            "--seed",
            "3",
            "--out",
        ])
        .arg(&offline)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let buffer = dir.path().join("synthetic.dglog");
    let server = Server::start(&[
        &env,
        "--model",
        "native",
        "--offline",
        offline.to_str().unwrap(),
        "--buffer",
        buffer.to_str().unwrap(),
        "--expand-every",
        "8",
    ]);
    let played = server.py(
        "play",
        &["--episodes", "5", "--seed", "7", "--difficulty", "1"],
    );
    // resets that name no task: the curriculum chooses, and hears the outcomes
    let free = server.py("concurrent", &["--clients", "4", "--episodes", "6"]);
    assert_eq!(free["episodes"], 24);
    let stats = server.get("/stats");
    // (each family's `episodes` counts the outcomes in its window only: 16 at most)
    let heard = stats["curriculum_episodes"].as_u64().unwrap();
    assert!(
        heard >= 24,
        "the curriculum heard of {heard} episodes: {stats}"
    );
    assert!(
        !stats["curriculum"].as_array().unwrap().is_empty(),
        "{stats}"
    );
    assert_eq!(stats["model_failures"]["rejected"], 0);
    server.stop();

    // the same episodes in-process, in the same synthetic world
    let data = dreamgym_buffer::jsonl::read_file(&offline).unwrap();
    let factory = EnvFactory::new(&env, None).unwrap();
    let model = std::sync::Arc::new(dreamgym_sim::model::native::NativeModel::fit(&data));
    let world =
        dreamgym::serve::synthetic::SyntheticWorld::new(model, data.clone(), &factory, true, 8, 0)
            .unwrap();
    let mut sim = world.open();
    let spec = TaskSpec {
        difficulty: Some(1),
        ..TaskSpec::default()
    };
    let steps = check_transcript(&mut sim, &played, &spec);

    // the buffer: the offline data it was seeded with, then the synthetic episodes played
    let (ended, prov, _) = read_buffer(&buffer);
    let offline_steps: usize = data.iter().map(|t| t.steps.len()).sum();
    assert_eq!(prov.get(&Provenance::Real), Some(&offline_steps));
    assert_eq!(
        prov.get(&Provenance::Synthetic),
        Some(&(steps + free["steps"].as_u64().unwrap() as usize))
    );
    assert_eq!(ended.get("seed"), Some(&data.len()));
    assert_eq!(
        ended
            .iter()
            .filter(|(k, _)| *k != "seed")
            .map(|(_, n)| n)
            .sum::<usize>(),
        5 + 24
    );
}

#[test]
fn many_sessions_the_session_limit_and_idle_reaping() {
    let dir = tempfile::tempdir().unwrap();
    let env = scenario("household.ron");
    let buffer = dir.path().join("load.dglog");
    let server = Server::start(&[&env, "--buffer", buffer.to_str().unwrap()]);
    let out = server.py("concurrent", &["--clients", "32", "--episodes", "3"]);
    assert_eq!(out["episodes"], 96);
    assert_eq!(server.get("/stats")["sessions"], 0);
    server.stop();
    let (ended, prov, _) = read_buffer(&buffer);
    assert_eq!(ended.values().sum::<usize>(), 96);
    assert_eq!(
        prov.get(&Provenance::Real).copied(),
        Some(out["steps"].as_u64().unwrap() as usize)
    );

    let limited = Server::start(&[
        &env,
        "--buffer",
        dir.path().join("limit.dglog").to_str().unwrap(),
        "--max-sessions",
        "3",
    ]);
    limited.py("capacity", &["--clients", "4"]);
    limited.stop();

    let idle = Server::start(&[
        &env,
        "--buffer",
        dir.path().join("idle.dglog").to_str().unwrap(),
        "--idle-timeout",
        "1",
    ]);
    idle.py("idle", &["--wait", "2.5"]);
    assert_eq!(idle.get("/stats")["sessions"], 0);
    idle.stop();
}

/// A bridged env gets a child per session; a child that dies mid-episode costs that episode (an
/// EXECUTION_ERROR answer), not the session: its next reset restarts the child.
#[test]
fn a_bridged_envs_dead_child_is_restarted_for_the_same_session() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("crashed");
    let script = dir.path().join("fake_bridge.py");
    std::fs::write(
        &script,
        format!(
            r#"
import json, os, sys
def send(obj):
    print(json.dumps(obj), flush=True)
send({{"type": "hello", "protocol": 2}})
obs = {{"lines": ["[x] thing: a thing"], "instruction": "do it", "admissible": ["a"]}}
n = 0
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "reset":
        n = 0
        send({{"id": req["id"], "ok": True, "observation": obs, "task": {{"id": "t"}}}})
    elif req["op"] == "step":
        n += 1
        if n == 3 and not os.path.exists({marker:?}):
            open({marker:?}, "w").close()
            sys.exit(3)
        send({{"id": req["id"], "ok": True, "observation": obs, "reward": 1.0 if n >= 5 else 0.0, "done": n >= 5}})
"#,
            marker = marker.display().to_string()
        ),
    )
    .unwrap();
    let buffer = dir.path().join("bridge.dglog");
    let server = Server::start(&[
        "bridge:fake",
        "--bridge-cmd",
        &format!("python3 {}", script.display()),
        "--buffer",
        buffer.to_str().unwrap(),
    ]);
    let out = server.py("crash", &[]);
    assert_eq!(out["after_restart"], 5);
    server.stop();
    assert!(marker.exists());
    // the episode cut by the crash (2 steps) and the whole one after the restart (5 steps)
    let (ended, prov, _) = read_buffer(&buffer);
    assert_eq!(prov.get(&Provenance::Real), Some(&7));
    assert_eq!(ended.get("done"), Some(&1));
    assert_eq!(ended.get("abandoned"), Some(&1));
}

#[test]
fn a_token_guards_everything_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&[
        &scenario("household.ron"),
        "--buffer",
        dir.path().join("t.dglog").to_str().unwrap(),
        "--token",
        "s3cret",
    ]);
    let out = server.py("token", &["--token", "s3cret"]);
    assert!(out["token_steps"].as_u64().unwrap() > 0);
    server.stop();
}

#[test]
fn serve_refuses_flags_that_do_not_fit() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let env = scenario("household.ron");
    assert!(run(&[&env, "--addr", "0.0.0.0:0"]).contains("--public"));
    assert!(run(&[&env, "--model", "native"]).contains("--offline"));
    assert!(run(&[&env, "--offline", "x.jsonl"]).contains("--model"));
    assert!(run(&[&env, "--max-sessions", "0"]).contains("--max-sessions"));
}

/// A few thousand bounded random frames over WebSocket: every one is answered (an observation,
/// a state or an error) or the connection is closed cleanly; the server stays up, stops on
/// SIGTERM, and its buffer reads back whole.
#[test]
fn random_frames_never_break_the_server_or_its_buffer() {
    use futures_util::{SinkExt, StreamExt};
    use rand::{RngExt, SeedableRng};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("fuzz.dglog");
    let server = Server::start(&[
        &scenario("household.ron"),
        "--buffer",
        buffer.to_str().unwrap(),
    ]);
    let url = format!("ws://127.0.0.1:{}/ws", server.port);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pieces = [
        "{",
        "}",
        "\"type\"",
        ":",
        "\"reset\"",
        "\"step\"",
        "\"state\"",
        "\"close\"",
        "\"data\"",
        "\"action\"",
        "\"seed\"",
        ",",
        "[",
        "]",
        "null",
        "-1",
        "1e999",
        "\"\\u0000\"",
        "\"é\"",
        "true",
        "{\"action\":\"go to kitchen\"}",
        "\"template\"",
        "18446744073709551616",
    ];
    let (mut answered, mut closed) = (0usize, 0usize);
    rt.block_on(async {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        for i in 0..3000 {
            let frame = match rng.random_range(0..10) {
                // valid messages keep an episode going between the junk
                0 => Message::Text(r#"{"type":"reset","data":{"seed":3}}"#.into()),
                1 => Message::Text(r#"{"type":"step","data":{"action":"look"}}"#.into()),
                2 => Message::Binary(
                    (0..rng.random_range(0..64))
                        .map(|_| rng.random())
                        .collect::<Vec<u8>>()
                        .into(),
                ),
                _ => {
                    let n = rng.random_range(1..24);
                    let text: String = (0..n)
                        .map(|_| pieces[rng.random_range(0..pieces.len())])
                        .collect();
                    Message::Text(text.into())
                }
            };
            let is_close = matches!(&frame, Message::Text(t) if t.contains("\"close\""));
            ws.send(frame).await.unwrap();
            let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap_or_else(|_| panic!("frame {i}: no answer within 10 s"));
            match reply {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert!(
                        ["observation", "state", "error"].contains(&v["type"].as_str().unwrap()),
                        "frame {i}: {t}"
                    );
                    answered += 1;
                }
                Some(Ok(Message::Close(_))) | None => {
                    assert!(is_close, "frame {i}: closed without a close message");
                    closed += 1;
                    ws = tokio_tungstenite::connect_async(&url).await.unwrap().0;
                }
                other => panic!("frame {i}: {other:?}"),
            }
        }
    });
    assert!(answered > 2500, "{answered} answered, {closed} closed");
    assert_eq!(server.get("/health")["status"], "healthy");
    server.stop();
    let (_, _, buf) = read_buffer(&buffer);
    assert!(buf.iter().all(|(_, r)| r.provenance() == Provenance::Real));
}

/// kill -9 in the middle of 16 clients' episodes: the log recovers every record the server had
/// made durable, and every recovered episode is whole.
#[test]
fn a_killed_server_leaves_a_buffer_of_whole_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("kill.dglog");
    let mut server = Server::start(&[
        &scenario("household.ron"),
        "--buffer",
        buffer.to_str().unwrap(),
    ]);
    let mut load = Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openenv_check.py"))
        .args([
            "concurrent",
            "--url",
            &server.url,
            "--clients",
            "16",
            "--episodes",
            "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let durable = loop {
        let s = server.get("/stats");
        let n = s["durable_records"].as_u64().unwrap();
        if s["durable_episodes"].as_u64().unwrap() >= 50 {
            break n;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no load: {s}");
        std::thread::sleep(Duration::from_millis(50));
    };
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let _ = load.kill();
    let _ = load.wait();
    let (ended, prov, _) = read_buffer(&buffer);
    let records = prov.values().sum::<usize>() as u64;
    assert!(
        records >= durable,
        "{records} records recovered, {durable} were durable"
    );
    assert!(ended.values().sum::<usize>() >= 50);
    // the kill may or may not have landed inside an episode's frames: cut the log the server
    // wrote at seeded random offsets (and just before its end) as other kills would have, so
    // that the test cannot pass by luck
    let full = std::fs::read(&buffer).unwrap();
    let probe = dir.path().join("cut.dglog");
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut cuts: Vec<usize> = (1..=40)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % full.len() as u64) as usize
        })
        .collect();
    cuts.extend((1..=8).map(|k| full.len().saturating_sub(97 * k)));
    let mut last = 0;
    for cut in cuts {
        std::fs::write(&probe, &full[..cut]).unwrap();
        // read_buffer asserts that every recovered episode is whole
        let (_, prov, _) = read_buffer(&probe);
        last = prov.values().sum::<usize>();
    }
    assert!(last > 0, "the cuts near the end kept records");
}

/// An OpenAI-compatible server whose every reply is not the JSON asked for: the LLM experience
/// model rejects each prediction. Returns the child and its base URL.
fn llm_that_never_answers(dir: &Path) -> (Child, String) {
    let script = dir.join("bad_llm.py");
    std::fs::write(
        &script,
        r#"
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"id": "x", "object": "chat.completion", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": "this is not json"}, "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#,
    )
    .unwrap();
    let mut child = Command::new("python3")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = format!("http://127.0.0.1:{}/v1", line.trim());
    (child, url)
}

#[test]
fn rejected_llm_replies_are_never_recorded_as_experience() {
    let dir = tempfile::tempdir().unwrap();
    let env = scenario("keys_doors.ron");
    let offline = dir.path().join("offline.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .args(["collect", "--env", &env, "--episodes", "4", "--out"])
        .arg(&offline)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (mut llm, url) = llm_that_never_answers(dir.path());
    let buffer = dir.path().join("llm.dglog");
    let server = Server::start_with_env(
        &[
            &env,
            "--model",
            "llm",
            "--offline",
            offline.to_str().unwrap(),
            "--buffer",
            buffer.to_str().unwrap(),
        ],
        &[("DREAMGYM_LLM_URL", &url)],
    );
    let played = server.py("play", &["--episodes", "2", "--seed", "1"]);
    let stats = server.get("/stats");
    server.stop();
    let _ = llm.kill();
    let _ = llm.wait();
    assert!(
        stats["model_failures"]["rejected"].as_u64().unwrap() >= 2,
        "{stats} / {played}"
    );
    let (_, prov, _) = read_buffer(&buffer);
    assert_eq!(
        prov.get(&Provenance::Synthetic),
        None,
        "a rejected reply (action -> unchanged state) was recorded: {prov:?}"
    );
}

/// Connections that send nothing neither exhaust the server's file handles nor outlive the
/// handshake timeout: over the cap they are closed at once, under it after the timeout, and the
/// server answers throughout the flood's aftermath.
#[test]
fn idle_connections_cannot_exhaust_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("idle.dglog");
    let server = Server::start(&[
        &scenario("keys_doors.ron"),
        "--buffer",
        buffer.to_str().unwrap(),
        "--max-sessions",
        "2",
        "--max-pending-connections",
        "8",
        "--handshake-timeout",
        "1",
    ]);
    let idle: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", server.child.id()))
        .unwrap()
        .count();
    assert!(
        fds < 64,
        "the server holds {fds} file handles with 300 idle connections"
    );
    // the ones under the cap are closed after the handshake timeout: the server answers again
    std::thread::sleep(Duration::from_millis(1500));
    let stats = server.get("/stats");
    let c = &stats["connections"];
    assert!(c["refused"].as_u64().unwrap() >= 280, "{stats}");
    assert!(c["timed_out"].as_u64().unwrap() >= 8, "{stats}");
    drop(idle);
    assert_eq!(server.get("/health")["status"], "healthy");
    server.stop();
}
