//! End to end: a small `dreamgym run` writes the report and the summary, the summary has every
//! method with its numbers, and sim-to-real beats a random policy by a clear margin.

#[path = "../sim/tests/support/http.rs"]
mod http;
#[path = "support/stranded.rs"]
mod stranded;

use std::path::Path;
use std::process::Command;
use stranded::stranded_keys_doors;

/// `dreamgym run scenarios/keys_doors.ron --backend cpu --config CFG --out OUT`, from the crate root.
fn run_keys_doors(cfg: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dreamgym"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "scenarios/keys_doors.ron",
            "--backend",
            "cpu",
            "--config",
        ])
        .arg(cfg)
        .arg("--out")
        .arg(out);
    c
}

#[test]
fn a_small_run_writes_report_and_summary_and_s2r_beats_random() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.ron");
    std::fs::write(
        &cfg,
        "(difficulty: Some(2), seeds: [1], offline_episodes: 80, iterations: 40, s2r_share: 0.5, eval_episodes: 100, fidelity_episodes: 10, ablations: true)",
    )
    .unwrap();
    let out = dir.path().join("out");
    let status = run_keys_doors(&cfg, &out).status().unwrap();
    assert!(status.success());
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("dreamgym_s2r"),
        "report has charts and methods"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let methods = &s["methods"];
    for key in [
        "real_only",
        "offline_bc",
        "dreamgym",
        "dreamgym_s2r",
        "dreamgym_without_retrieval",
        "dreamgym_without_reasoning",
        "dreamgym_without_curriculum",
        "dreamgym_sampled_world",
        "dreamgym_ensemble",
        "random",
    ] {
        let m = &methods[key];
        for field in [
            "success",
            "ci_low",
            "ci_high",
            "real_steps",
            "offline_steps",
            "synthetic_steps",
        ] {
            assert!(m[field].is_number(), "{key}.{field} missing: {m}");
        }
    }
    assert_eq!(
        methods["dreamgym"]["real_steps"], 0,
        "dreamgym uses no online real steps"
    );
    // what the policy exploits: the model→real gap and the model's fidelity on the policy's own
    // held-out evaluation episodes, per seed, for every method trained in the model
    for key in [
        "dreamgym",
        "dreamgym_without_retrieval",
        "dreamgym_without_reasoning",
        "dreamgym_without_curriculum",
        "dreamgym_sampled_world",
        "dreamgym_ensemble",
    ] {
        let seed = &methods[key]["seeds"][0];
        let gap = seed["model_real_gap"].as_f64().unwrap();
        let want = seed["model_success"].as_f64().unwrap() - seed["success"].as_f64().unwrap();
        assert!((gap - want).abs() < 1e-5, "{key}: gap {gap} vs {want}");
        let f = &seed["on_policy"];
        assert!(f["transitions"].as_u64().unwrap() >= 100, "{key}: {f}");
        for field in ["next_state_exact", "reward_accuracy", "false_success_rate"] {
            let x = f[field].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{key}.{field} = {x}");
        }
    }
    for key in ["real_only", "offline_bc", "random", "dreamgym_s2r"] {
        let seed = &methods[key]["seeds"][0];
        assert!(seed.get("model_real_gap").is_none(), "{key}: {seed}");
        assert!(seed.get("on_policy").is_none(), "{key}: {seed}");
    }
    // the ensemble row counts its halts; the single model never halts
    let halted = |key: &str| methods[key]["seeds"][0]["model_failures"]["halted"].as_u64();
    assert_eq!(halted("dreamgym"), Some(0));
    assert!(
        halted("dreamgym_ensemble").is_some(),
        "{}",
        methods["dreamgym_ensemble"]
    );
    assert!(html.contains("model→real gap"), "the report shows the gap");
    assert!(methods["dreamgym"]["synthetic_steps"].as_u64().unwrap() > 0);
    assert!(methods["dreamgym"]["offline_steps"].as_u64().unwrap() > 0);
    let real_only = methods["real_only"]["real_steps"].as_u64().unwrap();
    let s2r_real = methods["dreamgym_s2r"]["real_steps"].as_u64().unwrap();
    assert!(
        s2r_real > 0 && s2r_real <= real_only / 2,
        "S2R budget {s2r_real} vs baseline {real_only}"
    );
    let random = methods["random"]["success"].as_f64().unwrap();
    let s2r = methods["dreamgym_s2r"]["success"].as_f64().unwrap();
    eprintln!("random {random:.2}, dreamgym_s2r {s2r:.2}");
    assert!(s2r >= random + 0.15, "S2R {s2r} vs random {random}");

    // the run's buffer holds exactly the experience the summary counts (one seed): the offline
    // data once, every method's synthetic and online real steps, each episode tagged
    let (buf, _) = dreamgym_buffer::ReplayBuffer::open(
        &out.join("buffer.dglog"),
        dreamgym_buffer::BufferConfig::default(),
    )
    .unwrap();
    let mut by_method: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for (_, r) in buf.iter() {
        assert_eq!(r.episode.tags["seed"], "1");
        let key = (r.episode.tags["method"].clone(), r.provenance().to_string());
        *by_method.entry(key).or_default() += 1;
    }
    let n = |m: &str, p: &str| by_method.get(&(m.to_string(), p.to_string())).copied();
    let field = |m: &str, f: &str| methods[m][f].as_u64();
    assert_eq!(n("offline", "real"), field("dreamgym", "offline_steps"));
    assert_eq!(n("real_only", "real"), field("real_only", "real_steps"));
    assert_eq!(
        n("dreamgym_s2r", "real"),
        field("dreamgym_s2r", "real_steps")
    );
    for m in [
        "dreamgym",
        "dreamgym_without_retrieval",
        "dreamgym_without_reasoning",
        "dreamgym_without_curriculum",
        "dreamgym_sampled_world",
        "dreamgym_ensemble",
    ] {
        assert_eq!(
            n(m, "synthetic"),
            field(m, "synthetic_steps"),
            "{m}: {by_method:?}"
        );
    }
    assert_eq!(by_method.len(), 9, "{by_method:?}");
    let synthetic = buf
        .iter()
        .find(|(_, r)| r.provenance() == dreamgym_buffer::Provenance::Synthetic)
        .unwrap()
        .1;
    assert!(synthetic.episode.tags.contains_key("confidence"));
    // the model that played it: fit on the offline data
    assert_eq!(
        synthetic.episode.tags["model_fit"].parse::<u64>().ok(),
        field("dreamgym", "offline_steps")
    );
    assert!(synthetic.episode.tags["iteration"].contains('-'));
    assert!(synthetic.step.reasoning.is_some());
}

/// Sim-to-real in rounds with iterations in the model between them: the model is refit on the
/// real episodes of sim-to-real (its fidelity on the held-out episodes reported before and after,
/// with the transitions added and the refit's time), the policy's steps in the refit model are
/// counted as synthetic, and the ablation without the model update runs beside it.
#[test]
fn sim_to_real_refits_the_model_on_its_real_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.ron");
    std::fs::write(
        &cfg,
        "(difficulty: Some(2), seeds: [1], offline_episodes: 60, iterations: 6, s2r_share: 0.5, s2r_rounds: 2, s2r_synthetic_iterations: 2, eval_episodes: 40, fidelity_episodes: 10, ablations: true)",
    )
    .unwrap();
    let out = dir.path().join("out");
    assert!(run_keys_doors(&cfg, &out).status().unwrap().success());
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let methods = &s["methods"];
    let field = |m: &str, f: &str| {
        methods[m][f]
            .as_u64()
            .unwrap_or_else(|| panic!("{m}.{f}: {}", methods[m]))
    };
    // 6 iterations of 4 x 64 real steps for real_only: S2R gets half, 3 iterations in 2 rounds
    assert_eq!(field("real_only", "real_steps"), 6 * 256);
    assert_eq!(field("dreamgym_s2r", "real_steps"), 3 * 256);
    // 2 rounds x 2 iterations x 16 model envs x 64 steps in the model on top of dreamgym's
    let extra = 2 * 2 * 16 * 64;
    assert_eq!(
        field("dreamgym_s2r", "synthetic_steps"),
        field("dreamgym", "synthetic_steps") + extra
    );
    assert_eq!(
        field("dreamgym_s2r_without_model_update", "synthetic_steps"),
        field("dreamgym", "synthetic_steps") + extra
    );
    let before = &s["fidelity"];
    let after = &s["fidelity_after_s2r"];
    assert_eq!(
        after["transitions"], before["transitions"],
        "the same held-out episodes"
    );
    assert!(
        after["added_real_transitions"].as_u64().unwrap() >= 3 * 256,
        "every real step of S2R refits the model: {after}"
    );
    assert!(after["refit_seconds"].as_f64().unwrap() >= 0.0);
    for f in ["next_state_exact", "reward_accuracy"] {
        assert!(after[f].as_f64().unwrap() > 0.5, "{f}: {after}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("refit with sim-to-real"));
}

/// The stand-in server's transition reply (nothing changes) and its winning reply.
const STUB_TRANSITION: &str = r#"{"reasoning":"The agent looks around.","next_state":{"lines":["[room_a] room: you are in the west room","[key_red] key: a red key"],"admissible":["pick up the red key","go through the red door to the middle room"],"feedback":"Nothing happens."},"reward":0,"done":false,"success":false}"#;
const STUB_WIN: &str = r#"{"reasoning":"That completes the task.","next_state":{"lines":["[room_a] room: you are in the west room"],"admissible":["look"],"feedback":"Done."},"reward":1,"done":true,"success":true}"#;

/// A stand-in OpenAI-compatible server: of every 12 replies the 4th to 6th are cut at
/// `max_tokens` (so a request that meets them on all three attempts is rejected), the others say
/// the agent is in the west room with two actions. Returns the base URL and the number of
/// requests answered.
fn stub_llm_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let count = count.clone();
            std::thread::spawn(move || {
                let Some(body) = http::read_body(&conn) else {
                    return;
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
                // task generation: two candidates (one names what keys_doors does not have),
                // then a selection alternating between them
                let (content, finish) = match request["response_format"]["json_schema"]["name"]
                    .as_str()
                {
                    Some("task_variations") => (
                        r#"{"candidates":[{"instruction":"pick up the red key, then go to the room"},{"instruction":"ride the unicorn to the room"}]}"#.to_string(),
                        "stop",
                    ),
                    Some("task_selection") => {
                        static SELECTIONS: AtomicUsize = AtomicUsize::new(0);
                        let k = SELECTIONS.fetch_add(1, Ordering::SeqCst);
                        (
                            format!(r#"{{"reasoning":"More steps.","selection":{}}}"#, 1 + k % 2),
                            "stop",
                        )
                    }
                    // transitions: some replies cut at max_tokens, some episodes won
                    _ if (3..6).contains(&(n % 12)) => (STUB_TRANSITION.to_string(), "length"),
                    _ if n % 5 == 4 => (STUB_WIN.to_string(), "stop"),
                    _ => (STUB_TRANSITION.to_string(), "stop"),
                };
                let reply = serde_json::json!({"choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": content}}]}).to_string();
                http::reply(&mut conn, 200, &reply);
            });
        }
    });
    (url, served)
}

#[test]
fn the_loop_runs_in_an_llm_experience_model() {
    let (url, served) = stub_llm_server();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.ron");
    std::fs::write(
        &cfg,
        "(experience_model: Llm, seeds: [1], offline_episodes: 20, iterations: 3, expand_every: 1, synthetic_envs: 2, eval_episodes: 5, fidelity_episodes: 2, ablations: false, bc_epochs: 2, policy: (num_steps: 8))",
    )
    .unwrap();
    let out = dir.path().join("out");
    let status = run_keys_doors(&cfg, &out)
        .env("DREAMGYM_LLM_URL", &url)
        .status()
        .unwrap();
    assert!(status.success());
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let dg = &s["methods"]["dreamgym"];
    assert!(dg["synthetic_steps"].as_u64().unwrap() > 0, "{dg}");
    // every synthetic step and the fidelity check went to the server; cut replies were rejected
    assert!(served.load(std::sync::atomic::Ordering::SeqCst) >= 2 * 8 * 2);
    assert!(
        s["fidelity"]["rejected"].as_u64().unwrap() > 0,
        "{}",
        s["fidelity"]
    );
    // the same model wrote the curriculum's harder tasks; the one naming a unicorn was turned away
    let pool = s["curriculum_pool"].as_array().unwrap();
    let written: Vec<&serde_json::Value> = pool
        .iter()
        .filter(|t| t["task"]["posed"].is_object())
        .collect();
    assert!(
        !written.is_empty(),
        "rejected {}: {pool:?}",
        s["curriculum_rejected"]
    );
    assert!(
        written.iter().all(
            |t| t["task"]["posed"]["instruction"] == "pick up the red key, then go to the room"
        ),
        "{written:?}"
    );
    assert!(s["curriculum_rejected"].as_u64().unwrap() > 0, "{s}");

    // without the server's URL the run says what to set
    let err = run_keys_doors(&cfg, &dir.path().join("out2"))
        .env_remove("DREAMGYM_LLM_URL")
        .output()
        .unwrap();
    assert!(!err.status.success());
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(stderr.contains("DREAMGYM_LLM_URL"), "{stderr}");
}

#[test]
fn the_llm_check_counts_cut_replies_as_rejected() {
    // the structural check of scripts/llm-e2e.sh, against the stand-in server: with one attempt
    // per prediction, its cut replies end their episodes as rejected, the others are valid
    let (url, served) = stub_llm_server();
    let out = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "model",
            "llm-check",
            "--env",
            "scenario:scenarios/keys_doors.ron",
        ])
        .args(["--episodes", "6", "--steps", "3", "--attempts", "1"])
        .env("DREAMGYM_LLM_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (valid, rejected) = (
        v["valid"].as_u64().unwrap(),
        v["rejected"].as_u64().unwrap(),
    );
    assert!(valid >= 1 && rejected >= 1, "{v}");
    assert_eq!(v["truncated"].as_u64().unwrap(), rejected, "{v}");
    assert!(
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e.as_str().unwrap().contains("max_tokens")),
        "{v}"
    );
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst) as u64,
        v["requests"].as_u64().unwrap(),
        "{v}"
    );
}

/// The wgpu path end to end: a short `dreamgym run --backend wgpu` (on lavapipe where there is no
/// GPU) finishes within a time bound, trains on wgpu, and logs its progress although stderr is a
/// pipe. Full runs on lavapipe once looked stalled: no deadlock, but 6-7x slower iterations than
/// the CPU backend, kernels compiled anew for every action-list length, and no output without a
/// terminal. Skips without a Vulkan adapter unless DREAMGYM_REQUIRE_WGPU is set (scripts/test.sh
/// sets it where it installed lavapipe).
#[test]
fn a_short_wgpu_run_finishes_in_bounded_time_with_progress() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.ron");
    std::fs::write(
        &cfg,
        "(difficulty: Some(2), seeds: [1, 2], offline_episodes: 40, iterations: 6, s2r_share: 0.5, eval_episodes: 20, fidelity_episodes: 5, ablations: false)",
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut c = Command::new(env!("CARGO_BIN_EXE_dreamgym"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "scenarios/keys_doors.ron",
            "--backend",
            "wgpu",
            "--config",
        ])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .env("DREAMGYM_PROGRESS_SECS", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let started = std::time::Instant::now();
    let mut child = c.spawn().unwrap();
    let bound = std::time::Duration::from_secs(900);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > bound {
            child.kill().unwrap();
            panic!("dreamgym run --backend wgpu did not finish within {bound:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !status.success() && err.contains("no usable wgpu adapter") {
        assert!(
            std::env::var_os("DREAMGYM_REQUIRE_WGPU").is_none(),
            "DREAMGYM_REQUIRE_WGPU is set but there is no adapter: {err}"
        );
        eprintln!("skipping the wgpu run: no adapter");
        return;
    }
    assert!(status.success(), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["backend"], "wgpu");
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["seeds_done"], serde_json::json!([1, 2]));
    assert!(
        summary["methods"]["dreamgym_s2r"]["success"]
            .as_f64()
            .is_some()
    );
    // progress without a terminal: phases and iterations with a rate and the run's share done
    assert!(err.contains("seed 2: real_only (6 iterations"), "{err}");
    assert!(err.contains("iteration 6/6"), "{err}");
    assert!(err.contains("env steps/s"), "{err}");
    assert!(err.contains("run 100%"), "{err}");
    // the first seed's results were written before the second seed ran
    assert!(err.contains("seeds [1] done: partial results in"), "{err}");
}

/// An interrupted run keeps the seeds it finished: after the first of two seeds, summary.json
/// says `complete: false` with that seed's results.
#[test]
fn a_run_killed_after_its_first_seed_keeps_a_partial_summary() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.ron");
    std::fs::write(
        &cfg,
        "(difficulty: Some(1), seeds: [1, 2], offline_episodes: 30, iterations: 2, s2r_share: 0.5, eval_episodes: 10, fidelity_episodes: 0, ablations: false)",
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut child = run_keys_doors(&cfg, &out)
        .arg("--no-buffer")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // read the log until the first seed's partial summary is announced, then kill the run
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let announced = lines.any(|l| l.is_ok_and(|l| l.contains("partial results in")));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(announced, "the first seed's results were never announced");
    let partial: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(partial["complete"], false);
    assert_eq!(partial["seeds_done"], serde_json::json!([1]));
    assert_eq!(
        partial["methods"]["dreamgym"]["seeds"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{partial}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Incomplete run"), "{html}");
    assert!(
        !out.join("buffer.dglog").exists(),
        "--no-buffer wrote a buffer"
    );
}

/// A stand-in server that answers every transition with `content` (HTTP `status`).
fn fixed_llm_server(status: u16, content: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                if http::read_body(&conn).is_none() {
                    return;
                }
                let reply = serde_json::json!({"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}).to_string();
                http::reply(&mut conn, status, &reply);
            });
        }
    });
    url
}

const STUB_DEAD_END: &str = r#"{"reasoning":"Somewhere with no way out.","next_state":{"lines":["[room_a] room: you are in the west room"],"admissible":[],"feedback":""},"reward":0,"done":false,"success":false}"#;

/// A model whose every predicted state offers no action has each such reply refused (a state
/// the policy cannot act in is not a prediction) and its synthetic episode cut there; the run
/// goes on and counts them (with a threshold that allows them), and stops with the reason when
/// they pass `max_model_failure_share`. A server that fails every request does the same: the
/// run never passes off rejected replies as training. (Dead ends a model predicts without a
/// reply to refuse are `ModelEnv`'s unit test.)
#[test]
fn the_loop_survives_dead_end_states_and_stops_on_a_failing_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_text = |share: f32| {
        format!(
            "(experience_model: Llm, seeds: [1], offline_episodes: 20, iterations: 2, synthetic_envs: 2, eval_episodes: 5, fidelity_episodes: 0, ablations: false, bc_epochs: 1, policy: (num_steps: 4), curriculum: (lambda: 0.0), max_model_failure_share: {share})"
        )
    };
    let cfg = dir.path().join("run.ron");
    let url = fixed_llm_server(200, STUB_DEAD_END);
    std::fs::write(&cfg, cfg_text(1.0)).unwrap();
    let out = dir.path().join("out");
    let o = run_keys_doors(&cfg, &out)
        .env("DREAMGYM_LLM_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("rejected replies"), "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let f = &s["methods"]["dreamgym"]["seeds"][0]["model_failures"];
    assert!(f["rejected"].as_u64().unwrap() > 0, "{f}");
    assert_eq!(f["predicted"], 0, "{f}");

    std::fs::write(&cfg, cfg_text(0.5)).unwrap();
    let o = run_keys_doors(&cfg, &dir.path().join("out2"))
        .env("DREAMGYM_LLM_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("failed on 100.0% of the steps") && err.contains("max_model_failure_share"),
        "{err}"
    );

    let failing = fixed_llm_server(500, "overloaded");
    let o = run_keys_doors(&cfg, &dir.path().join("out3"))
        .env("DREAMGYM_LLM_URL", &failing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("rejected replies"), "{err}");
}

/// A model server that fails every request stops a long run within its first window of steps
/// (about 20 failed requests), not after the whole synthetic phase (300 iterations here: about
/// 24 minutes of failing requests).
#[test]
fn a_failing_model_server_stops_a_long_run_early() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.ron");
    std::fs::write(
        &cfg,
        "(experience_model: Llm, seeds: [1], offline_episodes: 20, iterations: 300, synthetic_envs: 2, eval_episodes: 5, fidelity_episodes: 0, ablations: false, bc_epochs: 1, policy: (num_steps: 4), curriculum: (lambda: 0.0))",
    )
    .unwrap();
    let failing = fixed_llm_server(500, "overloaded");
    let t0 = std::time::Instant::now();
    let o = run_keys_doors(&cfg, &dir.path().join("out"))
        .env("DREAMGYM_LLM_URL", &failing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("of the last 20 steps"), "{err}");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(120),
        "{:?}: {err}",
        t0.elapsed()
    );
}

/// Offline collection skips instances the expert cannot solve: a keys_doors copy where
/// picking up strands the agent (put_in_room unsolvable, goto and pickup fine) still yields
/// the episodes asked for, all of solvable families.
#[test]
fn offline_collection_skips_unsolvable_instances() {
    let dir = tempfile::tempdir().unwrap();
    let path = stranded_keys_doors(dir.path());
    let factory =
        dreamgym::support::envs::EnvFactory::new(&format!("scenario:{}", path.display()), None)
            .unwrap();
    let mut env = factory.open();
    let sampler = dreamgym_policy::TaskSampler::train(dreamgym_sim::TaskSpec {
        difficulty: Some(1),
        ..dreamgym_sim::TaskSpec::default()
    });
    let mix = dreamgym::experiments::run::OfflineMix {
        expert: 1.0,
        noisy: 0.0,
        random: 0.0,
        noise: 0.0,
    };
    let mut faults = dreamgym_sim::ExpertFaults::default();
    let data = dreamgym::experiments::run::collect_split(
        env.as_mut(),
        &sampler,
        30,
        mix,
        5,
        0.5,
        &mut faults,
    )
    .unwrap();
    assert_eq!(data.len(), 30);
    assert!(data.iter().all(|t| t.outcome.success));
    assert!(
        data.iter()
            .all(|t| t.task.params.get("template").map(String::as_str) != Some("put_in_room"))
    );
}

/// `dreamgym run --offline FILE`: the user's seed data for every seed, without its episodes on
/// held-out instances (counted in the notes); data of another env is refused with its line.
#[test]
fn a_run_takes_the_offline_data_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("offline.jsonl");
    let collected = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "collect",
            "--env",
            "scenario:scenarios/keys_doors.ron",
            "--policy",
            "noisy-expert:0.3",
            "--episodes",
            "40",
            "--out",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(collected.status.success());
    let all = dreamgym_buffer::jsonl::read_file(&data).unwrap();
    let kept: Vec<_> = all
        .iter()
        .filter(|t| dreamgym_policy::rollout::fold_of(&t.steps[0].state) != 0)
        .collect();
    assert!(
        kept.len() < all.len(),
        "some episodes are on held-out instances"
    );
    let cfg = dir.path().join("run.ron");
    std::fs::write(
        &cfg,
        "(seeds: [1, 2], iterations: 2, eval_episodes: 10, fidelity_episodes: 5, ablations: false)",
    )
    .unwrap();
    let out = dir.path().join("out");
    let status = run_keys_doors(&cfg, &out)
        .arg("--offline")
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["offline"]["episodes_per_seed"], kept.len());
    let steps: usize = kept.iter().map(|t| t.steps.len()).sum();
    assert_eq!(s["methods"]["dreamgym"]["offline_steps"], steps);
    let note = format!("{} on held-out instances left out", all.len() - kept.len());
    assert!(
        s["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains(&note)),
        "{}",
        s["notes"]
    );
    // household data for a keys_doors run: refused, naming the file and the line
    let other = dir.path().join("household.jsonl");
    let collected = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "collect",
            "--env",
            "scenario:scenarios/household.ron",
            "--episodes",
            "2",
            "--out",
        ])
        .arg(&other)
        .output()
        .unwrap();
    assert!(collected.status.success());
    let refused = run_keys_doors(&cfg, &dir.path().join("out2"))
        .arg("--offline")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains(&format!("{}:1", other.display())), "{err}");
}
