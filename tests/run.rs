//! End to end: a small `dreamgym run` writes the report and the summary, the summary has every
//! method with its numbers, and sim-to-real beats a random policy by a clear margin.

use std::process::Command;

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
    let status = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "run",
            "scenarios/keys_doors.ron",
            "--backend",
            "cpu",
            "--config",
        ])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
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
}
