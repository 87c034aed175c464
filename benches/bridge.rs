//! Bridge throughput from Rust: BabyAI-GoToLocal steps/s through one bridge process and through
//! N parallel bridges (uniformly random actions, resets included), next to the same adapter
//! stepped inside Python with no bridge (the ceiling the protocol overhead is measured against).
//!
//! Needs the venv: `bash scripts/setup-venv.sh`. Run: `cargo bench --bench bridge`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dreamgym::support::envs::{bridge_python, cache_dir};
use dreamgym_sim::{BridgeConfig, BridgeEnv, Env, TaskSpec};
use rand::{RngExt, SeedableRng};
use std::time::{Duration, Instant};

const LEVEL: &str = "BabyAI-GoToLocal-v0";

fn open() -> BridgeEnv {
    let cfg =
        BridgeConfig::python(&bridge_python(), &cache_dir().join("bridge")).expect("bridge script");
    let mut env = BridgeEnv::new(format!("bridge:{LEVEL}"), LEVEL, cfg);
    env.reset(&TaskSpec::default(), 0)
        .expect("the venv from scripts/setup-venv.sh is needed");
    env
}

/// Run `steps` random steps (resetting at episode ends); returns the observations' total lines.
fn run(env: &mut BridgeEnv, steps: u64, seed: u64) -> usize {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut lines = 0;
    let mut ep = seed * 1_000_000;
    for _ in 0..steps {
        let a = [
            "turn left",
            "turn right",
            "go forward",
            "pick up",
            "drop",
            "toggle",
        ][rng.random_range(0..6)];
        let r = env.step(a).unwrap();
        lines += r.observation.lines.len();
        if r.done || r.truncated {
            ep += 1;
            env.reset(&TaskSpec::default(), ep).unwrap();
        }
    }
    lines
}

fn python_baseline() {
    let script = dreamgym_sim::bridge::write_embedded_bridge(&cache_dir().join("bridge")).unwrap();
    let code = format!(
        r#"
import importlib.util, random, time, sys
spec = importlib.util.spec_from_file_location("b", {script:?}); b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b)
env = b.BabyAI("{LEVEL}", {{}}); env.reset(0); rng = random.Random(0); n = 20000; ep = 0
t = time.perf_counter()
for i in range(n):
    r = env.step(rng.choice(b.BabyAI.ACTIONS[:6]))
    if r["done"] or r["truncated"]:
        ep += 1; env.reset(ep)
print(n / (time.perf_counter() - t), file=sys.stderr)
"#,
        script = script.display().to_string()
    );
    let o = std::process::Command::new(bridge_python())
        .args(["-c", &code])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let rate = err.lines().last().unwrap_or("?").trim().to_string();
    eprintln!("in-process Python baseline (same adapter, no bridge): {rate} steps/s");
}

fn bridge(c: &mut Criterion) {
    python_baseline();
    let mut g = c.benchmark_group("bridge");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(8));
    for n in [1usize, 2, 4] {
        let mut envs: Vec<BridgeEnv> = (0..n).map(|_| open()).collect();
        g.bench_function(format!("babyai_goto_local/{n}_process"), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(n as u64);
                let t = Instant::now();
                std::thread::scope(|s| {
                    for (i, env) in envs.iter_mut().enumerate() {
                        s.spawn(move || run(env, per, i as u64 + 1));
                    }
                });
                // report time per step of the whole pool
                t.elapsed().mul_f64(iters as f64 / (per * n as u64) as f64)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bridge);
criterion_main!(benches);
