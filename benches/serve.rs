//! `dreamgym serve` throughput: steps/s over WebSocket with 1, 8 and 32 clients, for household
//! (the real scenario engine) and for the synthetic household env (the native model fit on 200
//! offline episodes, curriculum on), side by side in one run with
//! (a) the same env stepped in-process by as many threads (no protocol at all), and
//! (b) `openenv-core`'s own Python server (FastAPI + uvicorn) serving an env whose step does
//!     nothing — the ceiling of the Python protocol stack, whatever its env.
//!
//! Every client is the same Rust WebSocket client (tokio-tungstenite) running the same loop: reset,
//! then step admissible[(seed + 3 t) mod n] until done, then reset again; steps are counted over
//! a fixed window after a warm-up. The servers record every episode in their buffer, as they do
//! in use. Clients, servers and in-process threads share the machine's cores: compare the ratios.
//!
//! Needs the venv (`bash scripts/setup-venv.sh`). Run:
//! `cargo bench --bench serve` (or `--profile dev` for a quick look; the dreamgym child is the
//! binary of the same profile).

use dreamgym::serve::synthetic::SyntheticWorld;
use dreamgym::support::envs::{EnvFactory, bridge_python};
use dreamgym_sim::{Env, TaskSpec};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const WARMUP: Duration = Duration::from_millis(700);
const WINDOW: Duration = Duration::from_secs(3);
const CLIENTS: [usize; 3] = [1, 8, 32];

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `dreamgym serve ARGS` on a free port; returns the child and its ws:// URL.
fn dreamgym_serve(args: &[&str]) -> (KillOnDrop, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .arg("serve")
        .args(args)
        .args(["--addr", "127.0.0.1:0", "--max-sessions", "64"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (
        KillOnDrop(child),
        format!("{}/ws", http.replacen("http", "ws", 1)),
    )
}

/// openenv-core's server with the no-op env; returns the child and its ws:// URL.
fn python_noop() -> (KillOnDrop, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bridge_python())
        .arg(root().join("benches/python/noop_openenv_server.py"))
        .arg(port.to_string())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the Python server did not start (venv: bash scripts/setup-venv.sh)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (KillOnDrop(child), format!("ws://127.0.0.1:{port}/ws"))
}

fn choose(admissible: &[Value], seed: u64, t: u64) -> String {
    admissible[((seed + 3 * t) % admissible.len() as u64) as usize]
        .as_str()
        .unwrap()
        .to_string()
}

/// One client's loop until `stop`; counts steps into `counter` while `counting`.
async fn client(
    url: String,
    k: u64,
    counter: Arc<AtomicU64>,
    counting: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut seed = k * 1_000_000;
    let ask = |m: String| Message::Text(m.into());
    let reply = |ws_msg: Option<Result<Message, _>>| -> Value {
        match ws_msg {
            Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap(),
            other => panic!("no answer: {other:?}"),
        }
    };
    ws.send(ask(format!(
        r#"{{"type":"reset","data":{{"seed":{seed}}}}}"#
    )))
    .await
    .unwrap();
    let mut v = reply(ws.next().await);
    let mut t = 0;
    while !stop.load(Ordering::Relaxed) {
        let data = &v["data"];
        if data["done"].as_bool().unwrap_or(false) {
            seed += 1;
            t = 0;
            ws.send(ask(format!(
                r#"{{"type":"reset","data":{{"seed":{seed}}}}}"#
            )))
            .await
            .unwrap();
        } else {
            let adm = data["observation"]["admissible"]
                .as_array()
                .unwrap_or_else(|| panic!("no admissible actions in {v}"));
            let a = choose(adm, seed, t);
            ws.send(ask(
                serde_json::json!({"type": "step", "data": {"action": a}}).to_string(),
            ))
            .await
            .unwrap();
            t += 1;
            if counting.load(Ordering::Relaxed) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        v = reply(ws.next().await);
        assert_eq!(v["type"], "observation", "{v}");
    }
    let _ = ws.send(ask(r#"{"type":"close"}"#.into())).await;
}

/// Steps/s of `n` WebSocket clients against `url`.
fn over_ws(url: &str, n: usize) -> f64 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let counter = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let tasks: Vec<_> = (0..n as u64)
            .map(|k| {
                tokio::spawn(client(
                    url.to_string(),
                    k,
                    counter.clone(),
                    counting.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(WARMUP).await;
        counting.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        tokio::time::sleep(WINDOW).await;
        counting.store(false, Ordering::Relaxed);
        let rate = counter.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        rate
    })
}

/// Steps/s of `n` threads stepping their own env in-process, the same action rule.
fn in_process(open: &(dyn Fn() -> Box<dyn Env> + Sync), n: usize) -> f64 {
    let counter = AtomicU64::new(0);
    let counting = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for k in 0..n as u64 {
            let (counter, counting, stop) = (&counter, &counting, &stop);
            s.spawn(move || {
                let mut env = open();
                let mut seed = k * 1_000_000;
                let mut obs = env.reset(&TaskSpec::default(), seed).unwrap();
                let mut t = 0;
                while !stop.load(Ordering::Relaxed) {
                    let adm: Vec<Value> = obs
                        .admissible
                        .iter()
                        .map(|a| Value::from(a.as_str()))
                        .collect();
                    let r = env.step(&choose(&adm, seed, t)).unwrap();
                    t += 1;
                    if counting.load(Ordering::Relaxed) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    obs = r.observation;
                    if r.done || r.truncated {
                        seed += 1;
                        t = 0;
                        obs = env.reset(&TaskSpec::default(), seed).unwrap();
                    }
                }
            });
        }
        std::thread::sleep(WARMUP);
        counting.store(true, Ordering::Relaxed);
        let t0 = Instant::now();
        std::thread::sleep(WINDOW);
        counting.store(false, Ordering::Relaxed);
        let rate = counter.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        rate
    })
}

fn main() {
    // profiling a server by hand: `DREAMGYM_BENCH_URL=ws://HOST:PORT/ws cargo bench --bench serve`
    // runs only the clients against it
    if let Ok(url) = std::env::var("DREAMGYM_BENCH_URL") {
        for n in CLIENTS {
            println!("{n:>7} clients: {:.0} steps/s", over_ws(&url, n));
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env_id = format!(
        "scenario:{}",
        root().join("scenarios/household.ron").display()
    );
    let offline = dir.path().join("offline.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .args([
            "collect",
            "--env",
            &env_id,
            "--policy",
            "noisy-expert:0.3",
            "--episodes",
            "200",
        ])
        .arg("--out")
        .arg(&offline)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let data = dreamgym_buffer::jsonl::read_file(&offline).unwrap();
    let factory = EnvFactory::new(&env_id, None).unwrap();
    let model = Arc::new(dreamgym_sim::model::native::NativeModel::fit(&data));
    let world = SyntheticWorld::new(model, data, &factory, true, 64, 0).unwrap();

    let (_real, real_url) = dreamgym_serve(&[
        &env_id,
        "--buffer",
        dir.path().join("real.dglog").to_str().unwrap(),
    ]);
    let (_synth, synth_url) = dreamgym_serve(&[
        &env_id,
        "--model",
        "native",
        "--offline",
        offline.to_str().unwrap(),
        "--buffer",
        dir.path().join("synthetic.dglog").to_str().unwrap(),
    ]);
    let (_py, py_url) = python_noop();

    println!(
        "{:>7} {:>14} {:>14} {:>14} {:>14} {:>14} {:>11} {:>11}",
        "clients",
        "real in-proc",
        "real serve",
        "synth in-proc",
        "synth serve",
        "python noop",
        "real/py",
        "synth/py"
    );
    for n in CLIENTS {
        let real_local = in_process(&|| factory.open(), n);
        let real_ws = over_ws(&real_url, n);
        let synth_local = in_process(&|| Box::new(world.open()), n);
        let synth_ws = over_ws(&synth_url, n);
        let py = over_ws(&py_url, n);
        println!(
            "{n:>7} {real_local:>14.0} {real_ws:>14.0} {synth_local:>14.0} {synth_ws:>14.0} {py:>14.0} {:>10.1}x {:>10.1}x",
            real_ws / py,
            synth_ws / py
        );
    }
}
