//! An env's expert that fails during an episode (raises, hangs, crashes) never ends a collection
//! or a run: the failure is counted by kind, the noisy expert plays that step at random, the pure
//! expert gives the instance up, and only a share of failing instances above
//! `max_expert_failure_share` stops it, naming the env and the failure. And a user's own bridge
//! (`--bridge-cmd`) runs the main job. Fake bridges are small Python scripts (plain `python3`).

use dreamgym_sim::{
    BehaviourPolicy, BridgeConfig, BridgeEnv, EnvError, ExpertFault, ExpertFaults, TaskSpec,
    collect_episode_limited,
};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn faulty(mode: &str, k: u32) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/faulty_expert_bridge.py");
    format!("python3 {} {mode} {k}", script.display())
}

fn env(mode: &str, k: u32) -> BridgeEnv {
    let mut cfg = BridgeConfig::shell(&faulty(mode, k));
    cfg.step_timeout = Duration::from_secs(1);
    BridgeEnv::new("bridge:walk", "walk", cfg)
}

/// One episode of `policy` on instance `seed` (odd seeds fail at the k-th expert call).
fn episode(
    env: &mut BridgeEnv,
    policy: BehaviourPolicy,
    seed: u64,
    faults: &mut ExpertFaults,
) -> Result<dreamgym_buffer::Trajectory, EnvError> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    collect_episode_limited(
        env,
        &TaskSpec::default(),
        seed,
        policy,
        &mut rng,
        50,
        faults,
    )
}

const NOISY: BehaviourPolicy = BehaviourPolicy::NoisyExpert { epsilon: 0.0 };

#[test]
fn an_expert_that_raises_mid_episode_is_counted_and_the_noisy_expert_plays_on() {
    let mut env = env("raise", 3);
    let mut faults = ExpertFaults::default();
    // the noisy expert: step 3 at random, the episode goes on to its end
    let t = episode(&mut env, NOISY, 1, &mut faults).unwrap();
    assert!(t.outcome.success, "{:?}", t.outcome);
    assert!(t.steps.len() >= 5);
    assert_eq!((faults.raised, faults.faulty), (1, 1));
    // the pure expert gives the instance up, with the fault's kind and the env's message
    let e = episode(&mut env, BehaviourPolicy::Expert, 3, &mut faults).unwrap_err();
    match &e {
        EnvError::Expert {
            env,
            fault,
            message,
        } => {
            assert_eq!((env.as_str(), *fault), ("bridge:walk", ExpertFault::Raised));
            assert!(message.contains("AssertionError"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert_eq!((faults.raised, faults.faulty), (2, 2));
    // the env is still usable: a clean instance plays through, no restart
    let t = episode(&mut env, BehaviourPolicy::Expert, 2, &mut faults).unwrap();
    assert_eq!(t.steps.len(), 5);
    assert_eq!(env.restarts(), 0);
}

#[test]
fn an_expert_that_hangs_or_crashes_loses_its_episode_and_the_env_goes_on() {
    for (mode, fault) in [
        ("hang", ExpertFault::TimedOut),
        ("crash", ExpertFault::Crashed),
    ] {
        let mut env = env(mode, 2);
        let mut faults = ExpertFaults::default();
        // the episode is over for either policy: the env was restarted
        for policy in [NOISY, BehaviourPolicy::Expert] {
            let e = episode(&mut env, policy, 1, &mut faults).unwrap_err();
            assert!(
                matches!(e, EnvError::Expert { fault: f, .. } if f == fault),
                "{mode}: {e}"
            );
        }
        assert_eq!(env.restarts(), 2, "{mode}");
        let counted = match fault {
            ExpertFault::TimedOut => faults.timed_out,
            _ => faults.crashed,
        };
        assert_eq!((counted, faults.faulty), (2, 2), "{mode}: {faults:?}");
        // the restarted env resets and plays the next instance
        let t = episode(&mut env, BehaviourPolicy::Expert, 4, &mut faults).unwrap();
        assert!(t.outcome.success, "{mode}");
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dreamgym"))
}

fn output(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn collect_counts_expert_failures_and_stops_only_above_the_share() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("walk.jsonl");
    let collect = |share: &str| {
        output(
            bin()
                .args(["collect", "--env", "bridge:walk", "--bridge-cmd"])
                .arg(faulty("raise", 2))
                .args(["--policy", "expert", "--episodes", "10", "--seed", "0"])
                .args(["--max-expert-failure-share", share, "--out"])
                .arg(&out),
        )
    };
    // instances 1, 3, 5, 7, 9 have odd seeds: their expert raises at its second call
    let (ok, stdout, err) = collect("0.6");
    assert!(ok, "{err}");
    assert!(stdout.contains("wrote 5 episodes"), "{stdout}");
    assert!(
        stdout.contains("expert failures: 5 raised an error, 0 timed out, 0 crashed; 5 of 10 instances affected, 5 abandoned"),
        "{stdout}"
    );
    let (ok, _, err) = collect("0.3");
    assert!(!ok);
    assert!(
        err.contains("bridge:walk: the expert failed on") && err.contains("AssertionError"),
        "{err}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const TINY: &str = "seeds: [1], offline_episodes: 20, iterations: 2, synthetic_envs: 2, eval_episodes: 10, fidelity_episodes: 4, ablations: false, bc_epochs: 2, policy: (num_steps: 16)";

/// `dreamgym run` on a bridge whose expert raises on half the instances completes, and its
/// summary counts the failures.
#[test]
fn run_completes_where_the_expert_fails_on_some_instances() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "run.ron",
        &format!("({TINY}, max_expert_failure_share: 0.9)"),
    );
    let out = dir.path().join("out");
    let (ok, stdout, err) = output(
        bin()
            .args(["run", "bridge:walk", "--backend", "cpu", "--bridge-cmd"])
            .arg(faulty("raise", 2))
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&out),
    );
    assert!(ok, "{err}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let f = &s["offline"]["expert_faults"];
    assert!(f["raised"].as_u64().unwrap() > 0, "{f}");
    assert!(f["abandoned"].as_u64().unwrap() > 0, "{f}");
    assert_eq!(s["complete"], true);
    // the console and the report say so too
    let said = "the env's expert failed during the offline collection";
    assert!(stdout.contains(said), "{stdout}");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains(said));
}

/// The worked example of docs/bridge.md: a user's own env, served by their own program, runs
/// the main job with `--bridge-cmd` (and the same command given in the RON config).
#[test]
fn a_users_own_bridge_runs_the_main_job() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/treasure_bridge.py");
    let command = format!("python3 {}", example.display());
    let cfg = write(dir.path(), "run.ron", &format!("({TINY})"));
    let out = dir.path().join("out");
    let (ok, stdout, err) = output(
        bin()
            .args([
                "run",
                "bridge:treasure",
                "--backend",
                "cpu",
                "--bridge-cmd",
                &command,
            ])
            .arg("--config")
            .arg(&cfg)
            .arg("--out")
            .arg(&out),
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("dreamgym"), "{stdout}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["env"], "bridge:treasure");
    assert!(
        s["methods"]["real_only"]["success"].as_f64().is_some(),
        "{s}"
    );
    // the same from the config, for `train` too
    let cfg = write(
        dir.path(),
        "run2.ron",
        &format!("({TINY}, bridge_cmd: Some({command:?}))"),
    );
    let run_treasure = |cfg: &Path, out: &str| {
        output(
            bin()
                .args(["run", "bridge:treasure", "--backend", "cpu", "--no-buffer"])
                .arg("--config")
                .arg(cfg)
                .arg("--out")
                .arg(dir.path().join(out)),
        )
    };
    let (ok, _, err) = run_treasure(&cfg, "out2");
    assert!(ok, "{err}");
    // without it, the shipped bridge does not know the env: the error says so
    let (ok, _, err) = run_treasure(&write(dir.path(), "run3.ron", &format!("({TINY})")), "out3");
    assert!(!ok);
    assert!(err.contains("treasure"), "{err}");
}
