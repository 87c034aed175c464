//! Replay buffer benchmarks: durable log append, buffer push (memory / durable), uniform
//! sampling, exact and approximate top-10 retrieval at 10k, 100k and 1M records.
//!
//! Records are real transitions: random-policy rollouts in the three shipped scenarios.
//! Approximate retrieval also prints its recall@10 against exact search (tie-aware: a hit counts
//! when its score is at least the exact 10th score, since a real buffer holds duplicate transitions).
//!
//! Run: `cargo bench --bench buffer` (set `DREAMGYM_BENCH_MAX=100000` to skip the 1M sizes).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use dreamgym_buffer::{
    ApproxParams, BufferConfig, BufferRecord, DurableLog, EpisodeMeta, FsyncPolicy, Outcome,
    Provenance, ReplayBuffer, TailRule, Task, TaskOrigin, transition_text,
};
use dreamgym_sim::{Env, ScenarioEnv, TaskSpec};
use rand::{RngExt, SeedableRng};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn max_records() -> usize {
    std::env::var("DREAMGYM_BENCH_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// `n` real transitions from random rollouts in the three scenarios.
fn transitions(n: usize) -> Vec<BufferRecord> {
    let mut envs: Vec<ScenarioEnv> = ["household", "webshop", "keys_doors"]
        .iter()
        .map(|s| {
            ScenarioEnv::load(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("scenarios/{s}.ron")),
            )
            .unwrap()
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let mut out = Vec::with_capacity(n);
    let mut seed = 0u64;
    while out.len() < n {
        let env = &mut envs[(seed % 3) as usize];
        seed += 1;
        let mut obs = env.reset(&TaskSpec::default(), seed).unwrap();
        let task = env.task().unwrap().clone();
        let meta = Arc::new(EpisodeMeta {
            id: seed,
            task: Task {
                origin: TaskOrigin::Seed,
                ..task
            },
            env_id: env.id().to_string(),
            seed,
            policy: "random".into(),
            provenance: Provenance::Real,
            outcome: Outcome {
                success: false,
                total_reward: 0.0,
                length: 0,
                truncated: true,
            },
            tags: Default::default(),
        });
        for t in 0.. {
            let a = obs.admissible[rng.random_range(0..obs.admissible.len())].clone();
            let r = env.step(&a).unwrap();
            out.push(BufferRecord {
                episode: meta.clone(),
                t,
                step: r.to_step(obs, a),
            });
            obs = r.observation;
            if r.done || r.truncated || out.len() >= n {
                break;
            }
        }
    }
    out
}

fn cfg() -> BufferConfig {
    BufferConfig {
        capacity: usize::MAX,
        embed_dim: 128,
        fsync: FsyncPolicy::Batch { every: 4096 },
    }
}

fn append(c: &mut Criterion) {
    let recs = transitions(20_000);
    let payloads: Vec<Vec<u8>> = recs
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    let mean = payloads.iter().map(|p| p.len()).sum::<usize>() / payloads.len();
    // fixed 1 KiB payloads (the target's record size) and the real records' JSON
    let kib: Vec<Vec<u8>> = (0..20_000u32)
        .map(|i| {
            let mut v = vec![b'x'; 1024];
            v[..4].copy_from_slice(&i.to_le_bytes());
            v
        })
        .collect();
    eprintln!("real record JSON: mean {mean} bytes");
    let dir =
        tempfile::tempdir_in(std::env::var("DREAMGYM_BENCH_DIR").unwrap_or_else(|_| ".".into()))
            .unwrap();
    let mut g = c.benchmark_group("append");
    g.sample_size(20);
    const N: usize = 20_000;
    g.throughput(Throughput::Elements(N as u64));
    for (name, data) in [
        ("log_1KiB_batch4096", &kib),
        ("log_real_json_batch4096", &payloads),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let p = dir.path().join("log");
                    let _ = std::fs::remove_file(&p);
                    DurableLog::open(
                        &p,
                        FsyncPolicy::Batch { every: 4096 },
                        TailRule::CutTailOnly,
                        |_| Ok(()),
                    )
                    .unwrap()
                    .0
                },
                |mut log| {
                    for p in data.iter() {
                        log.append(p).unwrap();
                    }
                    log.sync().unwrap();
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.bench_function("buffer_push_memory", |b| {
        b.iter_batched(
            || ReplayBuffer::new(cfg()),
            |mut buf| {
                for r in &recs {
                    buf.push(r.clone()).unwrap();
                }
                buf
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("buffer_push_durable", |b| {
        b.iter_batched(
            || {
                let p = dir.path().join("buf");
                let _ = std::fs::remove_file(&p);
                ReplayBuffer::open(&p, cfg()).unwrap().0
            },
            |mut buf| {
                for r in &recs {
                    buf.push(r.clone()).unwrap();
                }
                buf.sync().unwrap();
                buf
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn sample_and_retrieve(c: &mut Criterion) {
    let max = max_records();
    let sizes: Vec<usize> = [10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n <= max)
        .collect();
    let t = Instant::now();
    let all = transitions(*sizes.last().unwrap());
    eprintln!(
        "generated {} transitions in {:.1}s",
        all.len(),
        t.elapsed().as_secs_f64()
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for &n in &sizes {
        let t = Instant::now();
        let mut buf = ReplayBuffer::new(cfg());
        for r in &all[..n] {
            buf.push(r.clone()).unwrap();
        }
        eprintln!(
            "filled a {n}-record buffer in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        // queries: transitions of fresh episodes (not in the buffer)
        let queries: Vec<Vec<f32>> = transitions(1200)[1000..]
            .iter()
            .map(|r| {
                buf.embedder()
                    .embed(&transition_text(&r.step.state.lines, &r.step.action))
            })
            .collect();
        let mut g = c.benchmark_group(format!("buffer_{n}"));
        g.sample_size(if n >= 1_000_000 { 10 } else { 30 });
        g.throughput(Throughput::Elements(256));
        g.bench_function("sample_uniform_256", |b| {
            b.iter(|| buf.sample(256, &mut rng).len())
        });
        g.bench_function("sample_mix_256", |b| {
            b.iter(|| buf.sample_mix(256, 0.5, &mut rng).len())
        });
        g.throughput(Throughput::Elements(1));
        let mut qi = 0;
        g.bench_function("exact_top10", |b| {
            b.iter(|| {
                qi = (qi + 1) % queries.len();
                buf.retrieve_vec(&queries[qi], 10).len()
            })
        });
        if n >= 100_000 {
            let t = Instant::now();
            buf.build_approx_index(ApproxParams::default());
            eprintln!(
                "built the HNSW index over {n} records in {:.1}s",
                t.elapsed().as_secs_f64()
            );
            // recall against speed: the smallest candidate list size that reaches 0.95
            let mut chosen = None;
            for ef in [64, 128, 256, 512, 1024] {
                buf.set_approx_ef(ef);
                let (mut ok, mut total) = (0, 0);
                let t = Instant::now();
                for q in &queries {
                    let approx = buf.retrieve_approx(q, 10);
                    std::hint::black_box(&approx);
                }
                let per_query = t.elapsed().as_secs_f64() / queries.len() as f64;
                for q in &queries {
                    let exact = buf.retrieve_vec(q, 10);
                    let kth = exact.last().map_or(f32::NEG_INFINITY, |h| h.0.score);
                    ok += buf
                        .retrieve_approx(q, 10)
                        .iter()
                        .filter(|h| h.0.score >= kth - 1e-5)
                        .count();
                    total += exact.len();
                }
                let recall = ok as f64 / total as f64;
                eprintln!(
                    "approx over {n} records, ef_search {ef}: recall@10 {recall:.3} (tie-aware, {} queries), {:.0} us/query",
                    queries.len(),
                    per_query * 1e6
                );
                if recall >= 0.95 && chosen.is_none() {
                    chosen = Some(ef);
                }
            }
            let ef = chosen.unwrap_or(1024);
            buf.set_approx_ef(ef);
            eprintln!("benchmarking approx_top10 with ef_search {ef}");
            g.bench_function("approx_top10", |b| {
                b.iter(|| {
                    qi = (qi + 1) % queries.len();
                    buf.retrieve_approx(&queries[qi], 10).len()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, append, sample_and_retrieve);
criterion_main!(benches);
