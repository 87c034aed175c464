//! Native experience model throughput: predictions/s, one at a time and batched, for a model fitted
//! on 10k and 100k real transitions of household (mixed expert / noisy-expert / random data),
//! predicting held-out transitions of unseen task instances. One core.
//!
//! Run: `cargo bench --bench model`. Uses mimalloc, as the `dreamgym` binary does.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dreamgym_buffer::Trajectory;
use dreamgym_sim::model::native::NativeModel;
use dreamgym_sim::model::{ExperienceModel, ModelContext};
use dreamgym_sim::policy::{BehaviourPolicy, collect_episode};
use dreamgym_sim::{ScenarioEnv, TaskSpec};
use rand::SeedableRng;
use std::path::Path;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Trajectories with `steps` transitions in all, from seeds starting at `first`.
fn data(steps: usize, first: u64) -> Vec<Trajectory> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/household.ron");
    let mut env = ScenarioEnv::load(&p).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(first);
    let (mut out, mut n, mut seed) = (vec![], 0, first);
    while n < steps {
        let policy = match seed % 3 {
            0 => BehaviourPolicy::Expert,
            1 => BehaviourPolicy::NoisyExpert { epsilon: 0.3 },
            _ => BehaviourPolicy::Random,
        };
        let t = collect_episode(&mut env, &TaskSpec::default(), seed, policy, &mut rng).unwrap();
        n += t.steps.len();
        out.push(t);
        seed += 1;
    }
    out
}

fn model(c: &mut Criterion) {
    let held = data(2_000, 1_000_000);
    let ctxs: Vec<ModelContext> = held
        .iter()
        .flat_map(|t| (0..t.steps.len()).map(move |i| ModelContext::at_step(t, i)))
        .collect();
    let mut g = c.benchmark_group("native_model");
    for size in [10_000usize, 100_000] {
        let train = data(size, 0);
        let m = NativeModel::fit(&train);
        eprintln!(
            "fitted on {} transitions: {} rules",
            m.transitions(),
            m.rules()
        );
        g.throughput(Throughput::Elements(ctxs.len() as u64));
        g.sample_size(10);
        g.bench_function(format!("predict/{size}"), |b| {
            b.iter(|| ctxs.iter().filter(|c| m.predict(c).is_ok()).count())
        });
        g.bench_function(format!("predict_batch/{size}"), |b| {
            b.iter(|| m.predict_batch(&ctxs).len())
        });
    }
    g.finish();
}

criterion_group!(benches, model);
criterion_main!(benches);
