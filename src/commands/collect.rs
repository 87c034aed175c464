//! `dreamgym collect`: offline trajectories from a behaviour policy, as JSONL.

use crate::commands::flags::{TaskFilter, parse_share};
use crate::support::envs::EnvFactory;
use crate::training::offline_file::{CollectPlan, collect};
use anyhow::Result;
use dreamgym_sim::TaskSpec;
use std::path::{Path, PathBuf};

/// The flags of `dreamgym collect`.
#[derive(clap::Args, Debug)]
pub struct CollectArgs {
    /// Env id, e.g. scenario:scenarios/household.ron
    #[arg(long)]
    pub env: String,
    /// expert | random | noisy-expert[:EPS]
    #[arg(long, default_value = "expert")]
    pub policy: String,
    /// Number of episodes.
    #[arg(long, default_value_t = 100)]
    pub episodes: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output JSONL file.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub tasks: TaskFilter,
    /// Environments run in parallel (each bridge is its own process).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// For bridge:NAME env ids: the command that runs your own bridge (docs/bridge.md).
    #[arg(long)]
    pub bridge_cmd: Option<String>,
    /// Cut an episode the env has not ended after this many steps (marked truncated).
    /// Scenarios end theirs far sooner; this bounds bridged envs that never report `done`.
    #[arg(long, default_value_t = dreamgym_sim::policy::MAX_EPISODE_STEPS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_steps: usize,
    /// Stop with an error once more than this share of task instances had an expert that
    /// raised, hung or crashed (counted by kind; the instance is given up, or a noisy
    /// expert's step played at random).
    #[arg(long, default_value_t = 0.5, value_parser = parse_share)]
    pub max_expert_failure_share: f64,
}

/// `dreamgym collect`: the plan of `args` on its env into its output file.
pub fn run(args: CollectArgs) -> Result<()> {
    let plan = CollectPlan {
        policy: args.policy.parse().map_err(anyhow::Error::msg)?,
        episodes: args.episodes,
        seed: args.seed,
        workers: args.workers,
        max_steps: args.max_steps,
        max_expert_failure_share: args.max_expert_failure_share,
    };
    collect_into(
        &args.env,
        args.bridge_cmd.as_deref(),
        &args.tasks.spec(),
        plan,
        &args.out,
    )
}

/// Collects `plan` on `env` (with its bridge command, for `bridge:` ids) into `out`.
fn collect_into(
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
