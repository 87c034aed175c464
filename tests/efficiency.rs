//! End to end: a small `dreamgym efficiency` writes its summary, report and plot; the summary
//! holds every method's curve and the headline figures; real_only's success rises with its
//! budget (within noise); and the figures do not depend on how many seeds ran at once.

use std::path::Path;
use std::process::Command;

const CONFIG: &str = "(
    run: (difficulty: Some(2), seeds: [1, 2], offline_episodes: 60, iterations: 12,
          eval_episodes: 80, fidelity_episodes: 0),
    real_budgets: [256, 1024, 6144],
    s2r_budgets: [256, 1024],
)";

fn efficiency(cfg: &Path, out: &Path, jobs: &str) -> serde_json::Value {
    let status = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["efficiency", "scenarios/keys_doors.ron", "--backend", "cpu"])
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(["--jobs", jobs])
        .status()
        .unwrap();
    assert!(status.success());
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// `dreamgym efficiency scenarios/keys_doors.ron --report-only --out OUT`.
fn report_only(out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "efficiency",
            "scenarios/keys_doors.ron",
            "--report-only",
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap()
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_small_efficiency_run_has_its_curves_headline_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("eff.ron");
    std::fs::write(&cfg, CONFIG).unwrap();
    let out = dir.path().join("one");
    let s = efficiency(&cfg, &out, "1");
    assert_eq!(s["complete"], true);
    assert_eq!(s["seeds_done"], serde_json::json!([1, 2]));

    let curves = &s["curves"];
    let real = curves["real_only"].as_array().unwrap();
    assert_eq!(real.len(), 3, "one point per budget");
    assert_eq!(curves["dreamgym_s2r"].as_array().unwrap().len(), 2);
    for one in ["dreamgym", "offline_bc", "random"] {
        assert_eq!(curves[one].as_array().unwrap().len(), 1, "{one}");
    }
    // real interactions: offline seed steps (the warm start) + online steps, rising with budget
    let offline = f(&s["offline_steps_per_seed"]);
    assert!(offline > 0.0);
    let xs: Vec<f64> = real.iter().map(|p| f(&p["real_interactions"])).collect();
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
    assert!((xs[0] - offline - 256.0).abs() < 1.0, "{xs:?} vs {offline}");
    // DreamGym's real interactions are its offline steps only
    let dg = &curves["dreamgym"][0];
    assert_eq!(f(&dg["real_interactions"]), offline);
    assert!(f(&dg["synthetic_steps"]) > 0.0);
    // more real budget, no worse (within the noise of 80 episodes x 2 seeds)
    let ys: Vec<f64> = real.iter().map(|p| f(&p["success"])).collect();
    assert!(ys[2] >= ys[0] - 0.1, "real_only's curve falls: {ys:?}");
    assert!(
        ys[2] > f(&curves["random"][0]["success"]),
        "real_only at its largest budget beats a random policy: {ys:?}"
    );

    let h = &s["headline"];
    for key in ["real_only", "dreamgym", "s2r", "reach_converged", "method"] {
        assert!(!h[key].is_null(), "headline.{key} missing: {h}");
    }
    assert_eq!(f(&h["real_only"]["success"]), ys[2]);
    let share = f(&h["dreamgym"]["share_of_real_only"]["mean"]);
    assert!(
        (share - f(&dg["success"]) / ys[2]).abs() < 1e-3,
        "share {share}"
    );
    assert_eq!(h["s2r"].as_array().unwrap().len(), 2);

    let svg = std::fs::read_to_string(out.join("efficiency.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polygon"),
        "a plot with shaded intervals"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("saving factor"));

    // the report recomputed from the summary's per-seed points: the same figures
    let before = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(report_only(&out).status.success());
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(again["curves"], s["curves"]);
    assert_eq!(again["headline"], s["headline"]);
    // a summary missing a seed's point is refused, naming the file
    let broken = before.replacen("\"budget\": 6144", "\"budget\": 6144, \"x\": 0", 1);
    let mut v: serde_json::Value = serde_json::from_str(&broken).unwrap();
    v["curves"]["real_only"][2]["seeds"]
        .as_array_mut()
        .unwrap()
        .pop();
    std::fs::write(out.join("summary.json"), v.to_string()).unwrap();
    let o = report_only(&out);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("summary.json") && err.contains("seed 2"),
        "{err}"
    );

    // two seeds at once: the same figures
    let two = efficiency(&cfg, &dir.path().join("two"), "2");
    assert_eq!(two["curves"], s["curves"]);
    assert_eq!(two["headline"], s["headline"]);
}

#[test]
fn bad_budgets_are_refused_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.ron");
    std::fs::write(&cfg, "(real_budgets: [20000, 5000])").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_dreamgym"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["efficiency", "scenarios/keys_doors.ron", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.ron") && err.contains("real_budgets") && err.contains("ascending"),
        "{err}"
    );
}
