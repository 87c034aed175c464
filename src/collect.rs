//! Offline data collection: run a behaviour policy for N episodes and write JSONL.

use anyhow::{Context, Result};
use dreamgym_buffer::JsonlWriter;
use dreamgym_sim::policy::{BehaviourPolicy, collect_episode};
use dreamgym_sim::{Env, TaskSpec};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use std::path::Path;

/// Totals of a collection run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectSummary {
    /// Episodes written.
    pub episodes: usize,
    /// Steps written.
    pub steps: usize,
    /// Episodes that succeeded.
    pub successes: usize,
}

/// Collect `episodes` episodes; episode `i` resets with seed `seed * 1_000_003 + i` so runs with
/// different seeds draw different task instances and the same seed reproduces the file exactly.
pub fn collect(
    env: &mut dyn Env,
    spec: &TaskSpec,
    policy: BehaviourPolicy,
    episodes: usize,
    seed: u64,
    out: &Path,
    progress: bool,
) -> Result<CollectSummary> {
    let mut w = JsonlWriter::create(out)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let bar = if progress {
        ProgressBar::new(episodes as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} episodes {msg} [{elapsed_precise}<{eta_precise}]",
        )
        .expect("valid template"),
    );
    let mut s = CollectSummary::default();
    for i in 0..episodes {
        let ep_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        let t = collect_episode(env, spec, ep_seed, policy, &mut rng)
            .with_context(|| format!("episode {i} (seed {ep_seed})"))?;
        s.episodes += 1;
        s.steps += t.steps.len();
        s.successes += t.outcome.success as usize;
        w.write(&t)?;
        bar.inc(1);
        bar.set_message(format!(
            "success {:.0}%",
            100.0 * s.successes as f64 / s.episodes as f64
        ));
    }
    w.finish()?;
    bar.finish_and_clear();
    Ok(s)
}
