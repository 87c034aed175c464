//! Replaying synthetic successes in the real env: does the real env confirm what the policy
//! learnt to exploit in the experience model?
//!
//! A model's false-success rate on real held-out episodes is measured where the data go; a
//! policy trained in the model goes elsewhere, and may learn to reach states where the model's
//! rules — each right on the data — add up to a success the real env would not give. This
//! draws synthetic episodes that succeeded in the model from a run's buffer, resets the real env
//! to the same task instance (the reset of a real episode of that instance in the buffer, checked
//! against the synthetic episode's first state), plays the same actions, and counts how many
//! succeed; for the others, the action after which the real state first differed from the
//! model's (or the real episode ended and the model's went on). Real steps are spent here,
//! outside any training budget, and are counted.

use crate::support::envs::EnvFactory;
use anyhow::Result;
use dreamgym_buffer::{Provenance, Trajectory};
use dreamgym_sim::TaskSpec;
use dreamgym_sim::model::fidelity::same_set;
use rand::SeedableRng;
use rand::seq::index;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// What replaying synthetic successes found.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayReport {
    /// Synthetic episodes that succeeded in the model, in the buffer.
    pub synthetic_successes: usize,
    /// How many were drawn.
    pub drawn: usize,
    /// Drawn episodes whose task instance no real episode in the buffer reset (not replayable).
    pub no_real_instance: usize,
    /// Drawn episodes whose real reset did not show the synthetic episode's first state.
    pub other_start: usize,
    /// Episodes replayed in the real env.
    pub replayed: usize,
    /// Replayed episodes that succeeded in the real env too.
    pub confirmed: usize,
    /// For the replayed episodes that did not succeed: the action after which the real state
    /// first differed from the model's, or the real episode ended before the model's, with how
    /// often (most frequent first).
    pub first_wrong: Vec<(String, usize)>,
    /// Real env steps spent.
    pub real_steps: usize,
    /// Drawn episodes whose replay the env failed (an error at reset or step): counted, the
    /// others replayed all the same.
    pub env_errors: usize,
    /// The first such error, as the env gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_env_error: Option<String>,
}

impl ReplayReport {
    /// The share of replayed synthetic successes the real env confirmed.
    pub fn confirmed_share(&self) -> f64 {
        self.confirmed as f64 / self.replayed.max(1) as f64
    }
}

/// Whether two env ids name one env: the same text, or scenario files that are one file
/// (`scenario:scenarios/x.ron` and `scenario:/abs/path/scenarios/x.ron`).
fn same_env(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (a.strip_prefix("scenario:"), b.strip_prefix("scenario:")),
            (Some(x), Some(y)) if crate::support::files::same_file(std::path::Path::new(x), std::path::Path::new(y))
        )
}

/// The env ids of the real episodes of `trajectories`, with how many episodes each.
pub fn real_envs(trajectories: &[Trajectory]) -> BTreeMap<&str, usize> {
    let mut envs = BTreeMap::new();
    for t in trajectories
        .iter()
        .filter(|t| t.provenance == Provenance::Real)
    {
        *envs.entry(t.env_id.as_str()).or_default() += 1;
    }
    envs
}

/// Replay `n` synthetic successes of `trajectories` (drawn with `seed`) in envs from `factory`,
/// each from the reset of a real episode of the same task instance in that env (real episodes
/// of other envs are never used). An env error on one episode is counted and the next is
/// replayed in a fresh env.
pub fn replay_synthetic_successes(
    trajectories: &[Trajectory],
    factory: &EnvFactory,
    n: usize,
    seed: u64,
) -> Result<ReplayReport> {
    // how each task instance was reset in the real env
    let mut resets: HashMap<&str, (TaskSpec, u64)> = HashMap::new();
    for t in trajectories.iter().filter(|t| {
        t.provenance == Provenance::Real && !t.steps.is_empty() && same_env(&t.env_id, factory.id())
    }) {
        resets.entry(t.task.id.as_str()).or_insert_with(|| {
            let spec = TaskSpec {
                template: t.task.params.get("template").cloned(),
                difficulty: Some(t.task.difficulty),
                posed: None,
            };
            (spec, t.seed)
        });
    }
    let successes: Vec<&Trajectory> = trajectories
        .iter()
        .filter(|t| {
            t.provenance == Provenance::Synthetic && t.outcome.success && !t.steps.is_empty()
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked: Vec<usize> =
        index::sample(&mut rng, successes.len(), n.min(successes.len())).into_vec();
    picked.sort_unstable();
    let mut report = ReplayReport {
        synthetic_successes: successes.len(),
        drawn: picked.len(),
        no_real_instance: 0,
        other_start: 0,
        replayed: 0,
        confirmed: 0,
        first_wrong: vec![],
        real_steps: 0,
        env_errors: 0,
        first_env_error: None,
    };
    let mut wrong: BTreeMap<String, usize> = BTreeMap::new();
    let mut env = factory.open();
    for t in picked.into_iter().map(|i| successes[i]) {
        let Some((spec, reset_seed)) = resets.get(t.task.id.as_str()) else {
            report.no_real_instance += 1;
            continue;
        };
        let played = replay_one(env.as_mut(), t, spec, *reset_seed, &mut report);
        match played {
            Ok(Replayed::OtherStart) => report.other_start += 1,
            Ok(Replayed::Confirmed) => {
                report.replayed += 1;
                report.confirmed += 1;
            }
            Ok(Replayed::WentWrong(at)) => {
                report.replayed += 1;
                *wrong.entry(at).or_default() += 1;
            }
            Err(e) => {
                report.env_errors += 1;
                report.first_env_error.get_or_insert_with(|| e.to_string());
                // a fresh env for the next one (a bridge restarted, an episode left half-way)
                env = factory.open();
            }
        }
    }
    report.first_wrong = wrong.into_iter().collect();
    report
        .first_wrong
        .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(report)
}

/// How one replay ended.
enum Replayed {
    /// The real reset showed another first state: not replayed.
    OtherStart,
    /// The real env gave the success too.
    Confirmed,
    /// It did not: the action after which the real state first differed.
    WentWrong(String),
}

/// Replays `t` from the real reset (`spec`, `reset_seed`) in `env`, counting the real steps it
/// spends in `report`.
fn replay_one(
    env: &mut dyn dreamgym_sim::Env,
    t: &Trajectory,
    spec: &TaskSpec,
    reset_seed: u64,
    report: &mut ReplayReport,
) -> Result<Replayed, dreamgym_sim::EnvError> {
    let first = env.reset(spec, reset_seed)?;
    if !same_set(&first.lines, &t.steps[0].state.lines) {
        return Ok(Replayed::OtherStart);
    }
    let mut first_diff: Option<&str> = None;
    let mut success = false;
    for (i, s) in t.steps.iter().enumerate() {
        let r = env.step(&s.action)?;
        report.real_steps += 1;
        let ended = r.done || r.truncated;
        // a real episode that ends before the model's did (a terminal failure the model did
        // not predict) went wrong there too
        let ended_early = ended && i + 1 < t.steps.len();
        if first_diff.is_none()
            && (ended_early || !same_set(&r.observation.lines, &s.next_state.lines))
        {
            first_diff = Some(&s.action);
        }
        if ended {
            success = r.success;
            break;
        }
    }
    Ok(if success {
        Replayed::Confirmed
    } else {
        // the states all matched: the model's reward or `done` was what differed
        let at = first_diff.unwrap_or_else(|| &t.steps[t.steps.len() - 1].action);
        Replayed::WentWrong(at.to_string())
    })
}
