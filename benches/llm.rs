//! LLM experience model throughput against a running OpenAI-compatible server: predictions/s
//! with 1, 2 and 4 requests in flight (`predict_batch` of 8 transitions each time).
//!
//! Needs a server: `bash scripts/llm-e2e.sh --bench` starts llama-server (SmolLM2-135M, 4 slots)
//! and runs this; or set DREAMGYM_LLM_URL yourself and run `cargo bench --bench llm`.

use dreamgym_sim::model::llm::{LlmConfig, LlmModel};
use dreamgym_sim::model::{ExperienceModel, ModelContext};
use dreamgym_sim::policy::{BehaviourPolicy, collect_episode};
use dreamgym_sim::{ScenarioEnv, TaskSpec};
use rand::SeedableRng;
use std::path::Path;
use std::time::Instant;

fn main() {
    let Ok(mut cfg) = LlmConfig::from_env() else {
        eprintln!(
            "DREAMGYM_LLM_URL is not set: start a server (scripts/llm-e2e.sh --bench does) and retry"
        );
        return;
    };
    cfg.max_tokens = 256;
    cfg.attempts = 1;
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/keys_doors.ron");
    let mut env = ScenarioEnv::load(&p).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let t = collect_episode(
        &mut env,
        &TaskSpec::default(),
        1,
        BehaviourPolicy::Expert,
        &mut rng,
    )
    .unwrap();
    let s = &t.steps[0];
    let ctxs: Vec<ModelContext> = (0..8)
        .map(|_| ModelContext {
            task: &t.task,
            history: &[],
            state: &s.state,
            action: &s.action,
            retrieved: &[],
        })
        .collect();
    println!(
        "{:>9} {:>10} {:>9} {:>9}",
        "in flight", "pred/s", "valid", "rejected"
    );
    for c in [1usize, 2, 4] {
        let mut cfg = cfg.clone();
        cfg.concurrency = c;
        let m = LlmModel::new(cfg).unwrap();
        let _ = m.predict(&ctxs[0]); // warm the server's prompt cache
        let t0 = Instant::now();
        let out = m.predict_batch(&ctxs);
        let secs = t0.elapsed().as_secs_f64();
        let valid = out.iter().filter(|r| r.is_ok()).count();
        println!(
            "{c:>9} {:>10.2} {valid:>9} {:>9}",
            out.len() as f64 / secs,
            out.len() - valid
        );
    }
}
