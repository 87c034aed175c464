//! Scenario engine throughput: steps/s with a uniformly random admissible policy (resets included,
//! as in a real rollout loop), and reset (instance setup + grounding) cost, for each shipped scenario.
//!
//! Run: `cargo bench --bench engine`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dreamgym_sim::{Env, ScenarioEnv, TaskSpec};
use rand::{RngExt, SeedableRng};
use std::path::Path;
use std::time::Instant;

fn scenarios() -> Vec<(&'static str, ScenarioEnv)> {
    ["household", "webshop", "keys_doors"]
        .into_iter()
        .map(|n| {
            let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{n}.ron"));
            (n, ScenarioEnv::load(&p).expect("shipped scenario loads"))
        })
        .collect()
}

fn engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    for (name, mut env) in scenarios() {
        let spec = TaskSpec::default();
        g.bench_function(format!("step_random/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
                let mut seed = 0u64;
                let mut obs = env.reset(&spec, seed).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    let a = &obs.admissible[rng.random_range(0..obs.admissible.len())];
                    let r = env.step(a).unwrap();
                    obs = if r.done || r.truncated {
                        seed += 1;
                        env.reset(&spec, seed).unwrap()
                    } else {
                        r.observation
                    };
                }
                t.elapsed()
            })
        });
        // the same loop on one fixed instance, resets excluded: the cost of a step itself
        g.bench_function(format!("step_only/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
                let mut obs = env.reset(&spec, 0).unwrap();
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let a = obs.admissible[rng.random_range(0..obs.admissible.len())].clone();
                    let t = Instant::now();
                    let r = env.step(&a).unwrap();
                    total += t.elapsed();
                    obs = if r.done || r.truncated {
                        env.reset(&spec, 0).unwrap()
                    } else {
                        r.observation
                    };
                }
                total
            })
        });
        g.bench_function(format!("reset/{name}"), |b| {
            let mut seed = 0;
            b.iter(|| {
                seed += 1;
                env.reset(&spec, seed).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
