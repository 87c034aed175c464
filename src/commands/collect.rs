//! `dreamgym collect`: offline trajectories from a behaviour policy, as JSONL.

use crate::collect::{CollectPlan, collect};
use crate::envs::EnvFactory;
use anyhow::Result;
use dreamgym_sim::TaskSpec;
use std::path::Path;

/// Collects `plan` on `env` (with its bridge command, for `bridge:` ids) into `out`.
pub fn run(
    env: &str,
    bridge_cmd: Option<&str>,
    spec: &TaskSpec,
    plan: CollectPlan,
    out: &Path,
) -> Result<()> {
    let envs = EnvFactory::new(env, bridge_cmd)?;
    let s = collect(&envs, spec, plan, out, true)?;
    println!(
        "wrote {} episodes ({} steps, success {:.1}%) to {}",
        s.episodes,
        s.steps,
        100.0 * s.successes as f64 / s.episodes.max(1) as f64,
        out.display()
    );
    if s.skipped > 0 {
        println!(
            "skipped {} task instances the expert found no plan for (unsolvable, or beyond the planner's budget)",
            s.skipped
        );
    }
    if s.expert_faults.total() > 0 {
        println!("expert failures: {}", s.expert_faults.describe());
    }
    Ok(())
}
