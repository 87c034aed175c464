//! Offline data collection: run a behaviour policy for N episodes (on N parallel environments if
//! asked) and write JSONL in episode order.

use crate::support::envs::EnvFactory;
use anyhow::{Context, Result, anyhow};
use dreamgym_buffer::{JsonlWriter, Trajectory};
use dreamgym_sim::policy::{BehaviourPolicy, ExpertFaults, collect_episode_limited};
use dreamgym_sim::{EnvError, TaskSpec};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::channel;

/// Totals of a collection run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectSummary {
    /// Episodes written.
    pub episodes: usize,
    /// Steps written.
    pub steps: usize,
    /// Episodes that succeeded.
    pub successes: usize,
    /// Episodes not written because the expert had no plan for their task instance (an
    /// unsolvable instance): counted, not fatal.
    pub skipped: usize,
    /// The expert's failures (raised, timed out, crashed) and the instances given up for them.
    pub expert_faults: ExpertFaults,
}

/// What a worker sends the writer for episode `i`.
struct Collected {
    i: usize,
    /// The episode; `None` where its instance was skipped (no plan) or given up (expert failure).
    trajectory: Result<Option<Trajectory>>,
    /// The expert's failures in it.
    faults: ExpertFaults,
    /// The failure that gave the instance up, as text.
    fault: Option<String>,
}

/// The reset seed of episode `i` of a run with `seed`.
pub fn episode_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(i as u64)
}

/// What a collection run does: which policy, how many episodes, how long each may be.
#[derive(Debug, Clone, Copy)]
pub struct CollectPlan {
    /// The behaviour policy.
    pub policy: BehaviourPolicy,
    /// Episodes to collect.
    pub episodes: usize,
    /// The run's seed (see [`episode_seed`]).
    pub seed: u64,
    /// Environments run in parallel.
    pub workers: usize,
    /// Steps after which an episode the env has not ended is cut (marked truncated): a bridged
    /// env that never reports `done` must not make a collection run forever.
    pub max_steps: usize,
    /// Largest share of task instances on which the expert may fail (raise, hang, crash) before
    /// collection stops as an error.
    pub max_expert_failure_share: f64,
}

/// Collect `plan.episodes` episodes with `plan.workers` environments in parallel. Episode `i`
/// resets with [`episode_seed`] and draws its policy's random choices from an RNG seeded by the
/// same number, so the file is the same for any number of workers and the same seed reproduces it
/// exactly.
pub fn collect(
    envs: &EnvFactory,
    spec: &TaskSpec,
    plan: CollectPlan,
    out: &Path,
    progress: bool,
) -> Result<CollectSummary> {
    let CollectPlan {
        policy,
        episodes,
        seed,
        workers,
        max_steps,
        max_expert_failure_share,
    } = plan;
    let mut w = JsonlWriter::create(out)?;
    let terminal = progress && std::io::stderr().is_terminal();
    let bar = if terminal {
        ProgressBar::new(episodes as u64)
    } else {
        ProgressBar::hidden()
    };
    // without a terminal: a log line now and then instead of the bar
    let lines = if progress && !terminal {
        crate::support::progress::Progress::new(0, true)
    } else {
        crate::support::progress::Progress::silent()
    };
    lines.phase_counting(&format!("collecting {episodes} episodes"), "episode");
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {bar:40} {pos}/{len} episodes {msg} [{elapsed_precise}<{eta_precise}]",
        )
        .expect("valid template"),
    );
    let next = AtomicUsize::new(0);
    let (tx, rx) = channel::<Collected>();
    let mut s = CollectSummary::default();
    let mut last_fault = String::new();
    let workers = workers.clamp(1, episodes.max(1));
    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                let mut env = envs.open();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= episodes {
                        return;
                    }
                    let ep_seed = episode_seed(seed, i);
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(ep_seed ^ 0x5eed_5eed);
                    let mut faults = ExpertFaults {
                        attempted: 1,
                        ..ExpertFaults::default()
                    };
                    let mut fault = None;
                    let t = match collect_episode_limited(
                        env.as_mut(),
                        spec,
                        ep_seed,
                        policy,
                        &mut rng,
                        max_steps,
                        &mut faults,
                    ) {
                        Ok(t) => Ok(Some(t)),
                        Err(EnvError::NoPlan { .. }) => Ok(None),
                        // the instance is given up (the env restarted where it had to); the
                        // next one is collected
                        Err(e @ EnvError::Expert { .. }) => {
                            faults.abandoned += 1;
                            fault = Some(e.to_string());
                            Ok(None)
                        }
                        Err(e) => Err(e).with_context(|| format!("episode {i} (seed {ep_seed})")),
                    };
                    let failed = t.is_err();
                    let sent = tx.send(Collected {
                        i,
                        trajectory: t,
                        faults,
                        fault,
                    });
                    if sent.is_err() || failed {
                        // stop this worker; the writer reports the first error
                        next.store(episodes, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
        drop(tx);
        // write in episode order as results arrive
        let mut pending: BTreeMap<usize, Option<Trajectory>> = BTreeMap::new();
        let mut want = 0;
        for c in rx {
            let t = c.trajectory?;
            s.expert_faults.add(&c.faults);
            if let Some(f) = c.fault {
                last_fault = f;
            } else if c.faults.faulty > 0 {
                last_fault = "a noisy expert's step failed and was played at random".into();
            }
            if let Err(m) =
                s.expert_faults
                    .check(max_expert_failure_share, envs.id(), &last_fault, false)
            {
                // the other workers stop at their next episode
                next.store(episodes, Ordering::Relaxed);
                return Err(anyhow!(m));
            }
            let skipped = t.is_none() && c.faults.abandoned == 0;
            pending.insert(c.i, t);
            s.skipped += skipped as usize;
            while let Some(t) = pending.remove(&want) {
                let Some(t) = t else {
                    want += 1;
                    bar.inc(1);
                    continue;
                };
                s.episodes += 1;
                s.steps += t.steps.len();
                s.successes += t.outcome.success as usize;
                w.write(&t)?;
                want += 1;
                bar.inc(1);
                lines.iteration(want, episodes, t.steps.len() as u64);
                bar.set_message(format!(
                    "success {:.0}%",
                    100.0 * s.successes as f64 / s.episodes.max(1) as f64
                ));
            }
        }
        if want < episodes {
            return Err(anyhow!(
                "collection stopped after {want} of {episodes} episodes"
            ));
        }
        Ok(())
    })?;
    w.finish()?;
    bar.finish_and_clear();
    Ok(s)
}
