//! Native experience model throughput: predictions/s, one at a time and batched, for a model fitted
//! on 10k and 100k real transitions of household (mixed expert / noisy-expert / random data),
//! predicting held-out transitions of unseen task instances; and the cost of long states (web
//! pages of 1k and 10k lines: fit and predict must grow linearly with the state, reported as
//! lines/s, which stays flat when they do). One core.
//!
//! And retrieval (`retrieval`): what the model is shown of the real data when an episode of an
//! unseen instance starts, from 10k, 100k and 1M real transitions — `Instance` (a lookup by task
//! id), `Similar` (a scan of every real instance's embedding below `APPROX_FROM` instances, an
//! HNSW index from there on) and `SimilarExact` (always the scan): the cost per reset, the
//! index's build time and the approximate index's recall against the scan (printed: the share of
//! the transitions the scan retrieves that the index retrieves too). Retrieval runs once per
//! episode, not per step; divide by the mean episode length (printed) for the cost per model step.
//!
//! Run: `cargo bench --bench model`. Uses mimalloc, as the `dreamgym` binary does.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dreamgym_buffer::Trajectory;
use dreamgym_sim::model::native::NativeModel;
use dreamgym_sim::model::retrieval::{Retrieval, RetrievalMode};
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

/// Episodes on a page of `lines` product links: each step selects one item, which marks its line
/// `(selected)`; reward 1 and the end when the asked-for product is selected. Like a web page
/// where an action changes one line of thousands.
fn long_state_data(lines: usize, episodes: usize, first: u64) -> Vec<Trajectory> {
    use dreamgym_buffer::{Observation, Provenance, Step, Task};
    use rand::RngExt;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(first);
    (0..episodes)
        .map(|e| {
            let target = rng.random_range(0..lines);
            let mut page: Vec<String> = (0..lines)
                .map(|i| {
                    let price = rng.random_range(1..500);
                    format!("[item_{i}] link: product {i} at {price} dollars")
                })
                .collect();
            let observe = |page: &Vec<String>| Observation {
                lines: page.clone(),
                instruction: format!("select product {target}"),
                admissible: (0..lines)
                    .step_by(lines.div_ceil(8))
                    .chain([target])
                    .map(|i| format!("select item {i}"))
                    .collect(),
                feedback: String::new(),
            };
            let mut steps = vec![];
            for k in 0..5 {
                let state = observe(&page);
                let item = if k == 4 {
                    target
                } else {
                    rng.random_range(0..lines)
                };
                if !page[item].ends_with("(selected)") {
                    page[item].push_str(" (selected)");
                }
                let done = item == target;
                steps.push(Step {
                    state,
                    action: format!("select item {item}"),
                    reasoning: None,
                    reward: if done { 1.0 } else { 0.0 },
                    next_state: observe(&page),
                    done,
                    truncated: false,
                    provenance: Provenance::Real,
                    reward_known: true,
                });
                if done {
                    break;
                }
            }
            let success = steps.last().is_some_and(|s| s.done);
            Trajectory {
                task: Task {
                    id: format!("page/e{}", first + e as u64),
                    instruction: format!("select product {target}"),
                    params: Default::default(),
                    difficulty: 1,
                    origin: Default::default(),
                },
                env_id: "synthetic:page".into(),
                seed: first + e as u64,
                provenance: Provenance::Real,
                policy: "random".into(),
                outcome: Trajectory::outcome_from_steps(&steps, success),
                steps,
            }
        })
        .collect()
}

fn long_states(c: &mut Criterion) {
    let mut g = c.benchmark_group("native_model_long_state");
    g.sample_size(10);
    for lines in [1_000usize, 10_000] {
        let train = long_state_data(lines, 4, 0);
        let held = long_state_data(lines, 2, 100);
        let ctxs: Vec<ModelContext> = held
            .iter()
            .flat_map(|t| (0..t.steps.len()).map(move |i| ModelContext::at_step(t, i)))
            .collect();
        let train_lines: usize = train.iter().map(|t| t.steps.len() * lines).sum();
        g.throughput(Throughput::Elements(train_lines as u64));
        g.bench_function(format!("fit/{lines}_lines"), |b| {
            b.iter(|| NativeModel::fit(&train).transitions())
        });
        let m = NativeModel::fit(&train);
        g.throughput(Throughput::Elements((ctxs.len() * lines) as u64));
        g.bench_function(format!("predict/{lines}_lines"), |b| {
            b.iter(|| ctxs.iter().filter(|c| m.predict(c).is_ok()).count())
        });
    }
    g.finish();
}

fn retrieval(c: &mut Criterion) {
    let held = data(2_000, 1_000_000);
    let mean_length = held.iter().map(|t| t.steps.len()).sum::<usize>() as f64 / held.len() as f64;
    eprintln!("held-out episodes: mean length {mean_length:.1} steps");
    let mut g = c.benchmark_group("retrieval");
    g.sample_size(10);
    g.throughput(Throughput::Elements(held.len() as u64));
    for size in [10_000usize, 100_000, 1_000_000] {
        let real = data(size, 0);
        let modes = [
            ("Instance", RetrievalMode::Instance, false),
            ("Similar", RetrievalMode::Similar, false),
            ("SimilarExact", RetrievalMode::Similar, true),
        ];
        let mut built = vec![];
        for (name, mode, exact) in modes {
            let started = std::time::Instant::now();
            let index = if exact {
                Retrieval::exact(&real, mode)
            } else {
                Retrieval::new(&real, mode)
            };
            eprintln!(
                "{name} index of {size} transitions ({} instances) built in {:.2} s",
                real.len(),
                started.elapsed().as_secs_f64()
            );
            g.bench_function(format!("{name}/{size}"), |b| {
                b.iter(|| {
                    held.iter()
                        .map(|t| {
                            index
                                .for_instance(&t.task.id, &t.task.instruction, &t.steps[0].state)
                                .len()
                        })
                        .sum::<usize>()
                })
            });
            built.push(index);
        }
        eprintln!(
            "Similar recall against the scan at {size} transitions: {:.3}",
            recall(&built[1], &built[2], &held)
        );
    }
    g.finish();
}

/// The share of the transitions `exact` retrieves for the starts of `held` that `approx`
/// retrieves too (as a multiset).
fn recall(approx: &Retrieval, exact: &Retrieval, held: &[Trajectory]) -> f64 {
    let (mut found, mut total) = (0usize, 0usize);
    for t in held {
        let args = (&t.task.id, &t.task.instruction, &t.steps[0].state);
        let key = |s: &dreamgym_buffer::Step| serde_json::to_string(s).expect("a step serialises");
        let mut got: std::collections::HashMap<String, usize> = Default::default();
        for s in approx.for_instance(args.0, args.1, args.2) {
            *got.entry(key(&s)).or_default() += 1;
        }
        for s in exact.for_instance(args.0, args.1, args.2) {
            total += 1;
            if let Some(n) = got.get_mut(&key(&s)).filter(|n| **n > 0) {
                *n -= 1;
                found += 1;
            }
        }
    }
    found as f64 / total.max(1) as f64
}

criterion_group!(benches, model, long_states, retrieval);
criterion_main!(benches);
