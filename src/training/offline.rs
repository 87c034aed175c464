//! The offline seed data of a run: episodes collected in the real env on training instances
//! with the configured behaviour mix (expert, noisy expert, random), counting what the expert
//! failed on.

use crate::support::envs::EnvFactory;
use crate::training::config::task_of;
use crate::training::config::{OfflineMix, RunConfig};
use anyhow::{Context, Result};
use dreamgym_buffer::Trajectory;
use dreamgym_policy::TaskSampler;
use dreamgym_policy::rollout::Split;
use dreamgym_sim::Env;
use dreamgym_sim::policy::{
    BehaviourPolicy, ExpertFaults, MAX_EPISODE_STEPS, collect_episode_limited,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Collects `n` episodes on instances of `sampler`'s split with the configured behaviour mix.
///
/// Instances the expert cannot solve are skipped and another is drawn, as `collect` does; so are
/// instances given up because the expert failed (raised, hung, crashed: counted by kind in
/// `faults`; a noisy expert's failed step turns random and its episode goes on). More than
/// `max_expert_failure_share` of the instances with an expert failure, or a family where the
/// expert solves almost nothing, is an error naming the env and the failure, not an endless loop.
pub fn collect_split(
    env: &mut dyn Env,
    sampler: &TaskSampler,
    n: usize,
    mix: OfflineMix,
    seed: u64,
    max_expert_failure_share: f64,
    faults: &mut ExpertFaults,
) -> Result<Vec<Trajectory>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let total = (mix.expert + mix.noisy + mix.random).max(1e-6);
    let mut out = Vec::with_capacity(n);
    let mut here = ExpertFaults::default();
    let mut skipped = 0;
    let mut last_fault = String::new();
    for i in 0..n {
        let share = i as f32 / n.max(1) as f32;
        let policy = if share < mix.expert / total {
            BehaviourPolicy::Expert
        } else if share < (mix.expert + mix.noisy) / total {
            BehaviourPolicy::NoisyExpert { epsilon: mix.noise }
        } else {
            BehaviourPolicy::Random
        };
        loop {
            let (_, instance) = sampler.reset(env, &mut rng)?;
            here.attempted += 1;
            let given_up = skipped + here.abandoned;
            let result = collect_episode_limited(
                env,
                &sampler.spec,
                instance,
                policy,
                &mut rng,
                MAX_EPISODE_STEPS,
                &mut here,
            );
            let context = |here: &ExpertFaults, skipped: usize| {
                format!(
                    "collecting offline episode {i} ({skipped} unsolvable instances skipped before; expert failures: {})",
                    here.describe()
                )
            };
            let collected = match result {
                Ok(t) => {
                    out.push(t);
                    true
                }
                Err(dreamgym_sim::EnvError::NoPlan { .. }) if given_up < 10 * n.max(1) => {
                    skipped += 1;
                    false
                }
                Err(e @ dreamgym_sim::EnvError::Expert { .. }) if given_up < 10 * n.max(1) => {
                    here.abandoned += 1;
                    last_fault = e.to_string();
                    false
                }
                Err(e) => {
                    faults.add(&here);
                    return Err(e).with_context(|| context(&here, skipped));
                }
            };
            if here.faulty > 0 && last_fault.is_empty() {
                last_fault = "a noisy expert's step failed and was played at random".into();
            }
            if let Err(m) = here.check(max_expert_failure_share, env.id(), &last_fault, false) {
                faults.add(&here);
                return Err(anyhow::Error::msg(m)).with_context(|| context(&here, skipped));
            }
            if collected {
                break;
            }
        }
    }
    // the share is judged on the whole collection too, however few instances it drew
    if let Err(m) = here.check(max_expert_failure_share, env.id(), &last_fault, true) {
        faults.add(&here);
        anyhow::bail!(m);
    }
    if skipped > 0 {
        tracing::warn!(
            "offline data: skipped {skipped} instances the expert could not solve (`dreamgym scenario check --expert N` shows where)"
        );
    }
    if here.total() > 0 {
        tracing::warn!(
            "offline data on {}: the expert failed: {} (the latest: {last_fault})",
            env.id(),
            here.describe()
        );
    }
    faults.add(&here);
    Ok(out)
}

pub(crate) fn steps_of(ts: &[Trajectory]) -> u64 {
    ts.iter().map(|t| t.steps.len() as u64).sum()
}

/// Collects `cfg.offline_episodes` offline seed episodes for `seed` (training instances, the
/// configured behaviour mix).
pub(crate) fn collect_offline(
    env: &mut dyn Env,
    cfg: &RunConfig,
    seed: u64,
    faults: &mut ExpertFaults,
) -> Result<Vec<Trajectory>> {
    let train = TaskSampler::of(task_of(cfg), cfg.train_split());
    collect_split(
        env,
        &train,
        cfg.offline_episodes,
        cfg.offline_mix,
        seed,
        cfg.max_expert_failure_share,
        faults,
    )
}

/// Offline seed data the user gave (`dreamgym run --offline FILE`): the same for every seed,
/// without the episodes outside the run's training split (held-out instances, and with
/// `eval_fold: Validation` the validation fold too: evaluation on those must stay honest).
pub struct GivenOffline {
    /// The file.
    pub path: std::path::PathBuf,
    /// Its episodes on training instances.
    pub trajectories: Vec<dreamgym_buffer::Trajectory>,
    /// Episodes left out: outside the training split (the evaluation fold's instances).
    pub left_out: usize,
}

impl GivenOffline {
    /// Reads `path`, keeping the episodes on instances of `train` and refusing data of another
    /// env (naming the line) and a file with no episode on a training instance.
    pub fn load(path: &std::path::Path, factory: &EnvFactory, train: Split) -> Result<Self> {
        let all = dreamgym_buffer::jsonl::read_file(path)?;
        factory.check_offline(path, &all)?;
        let total = all.len();
        let trajectories: Vec<_> = all
            .into_iter()
            .filter(|t| dreamgym_policy::rollout::on_split(t, train))
            .collect();
        if trajectories.is_empty() {
            anyhow::bail!(
                "{}: none of its {total} episodes is on a training instance (held-out instances are left out of the seed data)",
                path.display()
            );
        }
        Ok(Self {
            path: path.to_path_buf(),
            left_out: total - trajectories.len(),
            trajectories,
        })
    }
}
