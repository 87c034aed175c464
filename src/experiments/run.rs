//! `dreamgym run`: the whole DreamGym comparison on one environment, for several seeds — offline
//! seed data, the native experience model, curriculum-driven training in the model, sim-to-real,
//! the real-only and behaviour-cloning baselines, ablations, held-out evaluation — and the
//! numbers the report is made of. The methods themselves are in `crate::experiments::methods`.

use crate::experiments::methods::{Method, Played, ablations};
use crate::record::recorder::Recorder;
use crate::support::envs::EnvFactory;
use crate::support::progress::Progress;
use crate::training::context::{Recording, SeedContext};
use crate::training::families::BRIDGE_MAX_DIFFICULTY;
use crate::training::offline::{GivenOffline, collect_offline};
use crate::training::synthetic::Switches;
use anyhow::Result;
use dreamgym_curriculum::DifficultyPoint;
use dreamgym_policy::{SelectedDevice, TaskSampler};
use dreamgym_sim::model::fidelity;
use dreamgym_sim::model::retrieval::{Retrievable, RetrievalMode};
use dreamgym_sim::model::world::WorldPrior;
use dreamgym_sim::policy::ExpertFaults;
use serde::Serialize;
use std::collections::BTreeMap;

pub use crate::experiments::methods::SeedResult;
pub use crate::experiments::stats::mean_ci;
pub use crate::training::config::{ExperienceModelKind, OfflineMix, RunConfig};
pub use crate::training::context::random_success;
pub use crate::training::offline::collect_split;

/// A method over all seeds.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSummary {
    /// Mean held-out success over seeds.
    pub success: f32,
    /// 95% confidence interval (Student t over seeds), clipped to [0, 1].
    pub ci_low: f32,
    /// Upper end.
    pub ci_high: f32,
    /// Mean online real interactions.
    pub real_steps: u64,
    /// Mean real steps in the offline seed data.
    pub offline_steps: u64,
    /// Mean synthetic steps.
    pub synthetic_steps: u64,
    /// Per seed.
    pub seeds: Vec<SeedResult>,
}

fn summarise(results: Vec<SeedResult>) -> MethodSummary {
    let s: Vec<f32> = results.iter().map(|r| r.success).collect();
    let (success, ci_low, ci_high) = mean_ci(&s);
    let n = results.len().max(1) as u64;
    MethodSummary {
        success,
        ci_low,
        ci_high,
        real_steps: results.iter().map(|r| r.real_steps).sum::<u64>() / n,
        offline_steps: results.iter().map(|r| r.offline_steps).sum::<u64>() / n,
        synthetic_steps: results.iter().map(|r| r.synthetic_steps).sum::<u64>() / n,
        seeds: results,
    }
}

fn round3(x: f32) -> f64 {
    (x as f64 * 1000.0).round() / 1000.0
}

/// The numbers of a whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Env id.
    pub env: String,
    /// Settings.
    pub config: RunConfig,
    /// Backend used.
    pub backend: String,
    /// Offline seed data: episodes, real steps and mix.
    pub offline: serde_json::Value,
    /// Methods keyed `real_only`, `offline_bc`, `dreamgym`, `dreamgym_s2r`, the ablations, and
    /// `random` (a uniformly random policy, for reference).
    pub methods: BTreeMap<String, MethodSummary>,
    /// Fidelity of the native model (fit on seed 1's offline data, real held-out episodes).
    pub fidelity: serde_json::Value,
    /// The model refit on seed 1's offline data plus the real episodes of its sim-to-real, on
    /// the same held-out episodes, with the refit's cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fidelity_after_s2r: Option<serde_json::Value>,
    /// Curriculum difficulty per iteration (first seed).
    pub curriculum: Vec<DifficultyPoint>,
    /// Generated variants the feasibility check rejected (first seed).
    pub curriculum_rejected: usize,
    /// The final task pool with recent mean outcome and value (first seed).
    pub curriculum_pool: Vec<serde_json::Value>,
    /// Notes on what was not run and why.
    pub notes: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// False while seeds are still running: `dreamgym run` writes the summary after every seed,
    /// so an interrupted run keeps the seeds it finished.
    pub complete: bool,
    /// The seeds whose results the methods hold.
    pub seeds_done: Vec<u64>,
}

/// About how many policy iterations a run of `cfg` takes in all (for the progress ETA): per seed,
/// dreamgym and real_only run `iterations` each, sim-to-real `s2r_share` of that plus its
/// iterations in the model, and each of the three ablations `iterations` again (and sim-to-real
/// again without the model update when it trains in the model).
pub fn planned_iterations(cfg: &RunConfig) -> u64 {
    let s2r = f64::from(cfg.s2r_share.clamp(0.0, 1.0)) * cfg.iterations as f64
        + (cfg.s2r_rounds * cfg.s2r_synthetic_iterations) as f64;
    let ablations = if cfg.ablations {
        3.0 * cfg.iterations as f64
            + if cfg.s2r_synthetic_iterations > 0 {
                s2r
            } else {
                0.0
            }
    } else {
        0.0
    };
    let per_seed = 2.0 * cfg.iterations as f64 + s2r + ablations;
    (per_seed * cfg.seeds.len() as f64).round() as u64
}

/// Runs every method on every seed, on offline seed data collected per seed or `given`.
/// `progress` is told what is happening; `seed_done` gets the summary so far
/// (`complete: false`) after each seed but the last.
pub fn run(
    env_id: &str,
    cfg: &RunConfig,
    device: &SelectedDevice,
    progress: &Progress,
    recorder: Option<&Recorder>,
    given: Option<&GivenOffline>,
    seed_done: &mut dyn FnMut(&RunSummary) -> Result<()>,
) -> Result<RunSummary> {
    let started = std::time::Instant::now();
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("run settings: {e}"))?;
    let factory = EnvFactory::new(env_id, cfg.bridge_cmd.as_deref())?;
    let mut results: BTreeMap<String, Vec<SeedResult>> = BTreeMap::new();
    let mut offline_total = (0usize, 0u64);
    let mut faults = ExpertFaults::default();
    // the summary so far: written after every seed, returned after the last
    let mut notes = run_notes(cfg, &factory);
    if let Some(g) = given {
        notes.push(format!(
            "offline seed data: {} ({} episodes for every seed; {} on {} instances left out)",
            g.path.display(),
            g.trajectories.len(),
            g.left_out,
            match cfg.eval_fold {
                crate::training::config::EvalFold::HeldOut => "held-out",
                crate::training::config::EvalFold::Validation => "held-out and validation",
            }
        ));
    }
    let mut summary = RunSummary::empty(env_id, cfg, device, notes);
    for (k, &seed) in cfg.seeds.iter().enumerate() {
        let mut env = factory.open();
        let offline = match given {
            Some(g) => g.trajectories.clone(),
            None => {
                progress.phase(&format!(
                    "seed {seed}: collecting {} offline episodes",
                    cfg.offline_episodes
                ));
                collect_offline(env.as_mut(), cfg, seed, &mut faults)?
            }
        };
        let recording = recorder.map(|r| Recording::new(r.clone()));
        let ctx = SeedContext::new(cfg, &factory, device, seed, offline, progress, recording);
        ctx.record_offline();
        offline_total = (
            offline_total.0 + ctx.offline.len(),
            offline_total.1 + ctx.offline_steps(),
        );
        // real held-out episodes the model's fidelity is measured on (first seed)
        let heldout = if k == 0 && cfg.fidelity_episodes > 0 {
            progress.phase("measuring the experience model's fidelity on real held-out episodes");
            let (heldout, fidelity) = heldout_fidelity(&ctx, env.as_mut(), seed, &mut faults)?;
            summary.fidelity = fidelity;
            heldout
        } else {
            vec![]
        };
        play_methods(&ctx, k == 0, &heldout, &mut summary, &mut results)?;
        summary.seeds_done.push(seed);
        summary.update(&results, offline_total, &faults, started);
        if !summary.complete {
            seed_done(&summary)?;
        }
    }
    Ok(summary)
}

/// What the report says about how the run was set up: the retrieval the model env uses and,
/// for a bridged env, where its curriculum variants come from.
fn run_notes(cfg: &RunConfig, factory: &EnvFactory) -> Vec<String> {
    let shown = match cfg.retrievable {
        Retrievable::Real => "the real transitions",
        Retrievable::All => {
            "the real transitions and those of the synthetic episodes played so far"
        }
        Retrievable::Synthetic => "the transitions of the synthetic episodes played so far",
    };
    let mut notes = vec![format!(
        "retrieval ({:?}, retrievable {:?}): the model env passes the native model {shown} of the task instance being played (up to 64){}; dreamgym_without_retrieval passes none",
        cfg.retrieval,
        cfg.retrievable,
        if cfg.retrieval == RetrievalMode::Similar {
            ", then those of the most similar other instances"
        } else {
            ""
        }
    )];
    notes.push(folds_note(cfg));
    if factory.scenario().is_none() {
        notes.push(format!("curriculum variants of a bridged env: its adapter's difficulty knob, levels 2 to {BRIDGE_MAX_DIFFICULTY} above the env as named (docs/bridge.md); a level enters the pool when the env's expert solves 3 instances of it"));
    }
    notes
}

/// Which instances a run trains and evaluates on (`RunConfig::eval_fold`), as a note.
pub(crate) fn folds_note(cfg: &RunConfig) -> String {
    let (run, tuning) = match cfg.eval_fold {
        crate::training::config::EvalFold::HeldOut => ("", ""),
        crate::training::config::EvalFold::Validation => (
            "VALIDATION run — ",
            "; the held-out fold 0 is never played: tune on these figures, report the held-out ones",
        ),
    };
    format!(
        "folds: {run}every method trains on {} and is evaluated on {}{tuning}; an instance's fold is a CRC-32 of its first observation (instruction and lines) mod 5 (dreamgym_policy::rollout::fold_of)",
        cfg.train_split().name(),
        cfg.eval_split().name()
    )
}

/// Real held-out episodes (`fidelity_episodes` of them, new instances) and the fidelity on them
/// of the model fit on the seed's offline data.
fn heldout_fidelity(
    ctx: &SeedContext<'_>,
    env: &mut dyn dreamgym_sim::Env,
    seed: u64,
    faults: &mut ExpertFaults,
) -> Result<(Vec<dreamgym_buffer::Trajectory>, serde_json::Value)> {
    let held = TaskSampler::of(ctx.spec.clone(), ctx.cfg.eval_split());
    let heldout = collect_split(
        env,
        &held,
        ctx.cfg.fidelity_episodes,
        ctx.cfg.offline_mix,
        seed ^ 0xf1d,
        ctx.cfg.max_expert_failure_share,
        faults,
    )?;
    let model = ctx.model(true)?;
    let mut fidelity = serde_json::to_value(fidelity::evaluate(
        model.as_ref(),
        &ctx.offline,
        &heldout,
        0.99,
    ))?;
    // the sampled world's prior: where held-out instances' objects were, and the mass it gave
    if let Some(f) = fidelity.as_object_mut() {
        let prior = WorldPrior::fit(&ctx.offline);
        f.insert(
            "world_prior".into(),
            serde_json::to_value(prior.score(&heldout))?,
        );
    }
    Ok((heldout, fidelity))
}

/// Plays every method of the comparison on one seed into `results`: random, dreamgym,
/// real_only, dreamgym_s2r (with `s2r_share` of real_only's real steps), offline_bc and, with
/// `ablations`, the ablations. The first seed's curriculum and (with `heldout`) the fidelity
/// after sim-to-real go to `summary`.
fn play_methods(
    ctx: &SeedContext<'_>,
    first_seed: bool,
    heldout: &[dreamgym_buffer::Trajectory],
    summary: &mut RunSummary,
    results: &mut BTreeMap<String, Vec<SeedResult>>,
) -> Result<()> {
    let cfg = ctx.cfg;
    let mut keep = |name: &str, played: &Played| {
        results
            .entry(name.into())
            .or_default()
            .push(played.result.clone());
    };
    keep("random", &ctx.play("random", &Method::Random)?);
    let dreamgym = ctx.play("dreamgym", &Method::DreamGym(Switches::ALL))?;
    keep("dreamgym", &dreamgym);
    if let (true, Some(c)) = (first_seed, &dreamgym.curriculum) {
        summary.curriculum = c.history.clone();
        summary.curriculum_rejected = c.rejected;
        summary.curriculum_pool = c.pool.clone();
    }
    let real_only = ctx.play(
        "real_only",
        &Method::RealOnly {
            iterations: cfg.iterations,
        },
    )?;
    keep("real_only", &real_only);
    // sim-to-real gets s2r_share of real_only's real steps, in whole iterations
    let per_iteration = ctx.steps_per_iteration() as f32;
    let s2r_iterations = ((cfg.s2r_share * real_only.result.real_steps as f32) / per_iteration)
        .floor()
        .max(1.0) as usize;
    let s2r = ctx.play(
        "dreamgym_s2r",
        &Method::SimToReal {
            from: &dreamgym,
            iterations: s2r_iterations,
            model_update: true,
        },
    )?;
    keep("dreamgym_s2r", &s2r);
    if !heldout.is_empty() {
        summary.fidelity_after_s2r = Some(fidelity_after(ctx, &s2r, heldout)?);
    }
    keep("offline_bc", &ctx.play("offline_bc", &Method::OfflineBc)?);
    if cfg.ablations {
        for (name, switches) in ablations(cfg.sampled_world, cfg.ensemble) {
            keep(name, &ctx.play(name, &Method::DreamGym(switches))?);
        }
        // the model update matters only where the policy trains in the model after it
        if cfg.s2r_synthetic_iterations > 0 {
            let name = "dreamgym_s2r_without_model_update";
            let frozen = Method::SimToReal {
                from: &dreamgym,
                iterations: s2r_iterations,
                model_update: false,
            };
            keep(name, &ctx.play(name, &frozen)?);
        }
    }
    Ok(())
}

/// The fidelity of the model refit on the offline data plus `s2r`'s real episodes, on `heldout`,
/// with the refit's wall time and how many real transitions it added.
fn fidelity_after(
    ctx: &SeedContext<'_>,
    s2r: &Played,
    heldout: &[dreamgym_buffer::Trajectory],
) -> Result<serde_json::Value> {
    let data = ctx.with_offline(&s2r.real_episodes);
    let started = std::time::Instant::now();
    let model = ctx.refit(&data)?;
    let refit_seconds = started.elapsed().as_secs_f64();
    let mut v = serde_json::to_value(fidelity::evaluate(model.as_ref(), &data, heldout, 0.99))?;
    v["refit_seconds"] = serde_json::json!(refit_seconds);
    v["added_real_transitions"] = serde_json::json!(
        s2r.real_episodes
            .iter()
            .map(|t| t.steps.len())
            .sum::<usize>()
    );
    Ok(v)
}

impl RunSummary {
    /// A summary with no seed done yet.
    fn empty(env_id: &str, cfg: &RunConfig, device: &SelectedDevice, notes: Vec<String>) -> Self {
        RunSummary {
            env: env_id.to_string(),
            config: cfg.clone(),
            backend: device.kind.to_string(),
            offline: serde_json::Value::Null,
            methods: BTreeMap::new(),
            fidelity: serde_json::Value::Null,
            fidelity_after_s2r: None,
            curriculum: vec![],
            curriculum_rejected: 0,
            curriculum_pool: vec![],
            notes,
            seconds: 0.0,
            complete: false,
            seeds_done: vec![],
        }
    }

    /// Brings the figures up to date with `results` of the seeds done so far.
    fn update(
        &mut self,
        results: &BTreeMap<String, Vec<SeedResult>>,
        offline_total: (usize, u64),
        faults: &ExpertFaults,
        started: std::time::Instant,
    ) {
        let n = self.seeds_done.len().max(1);
        let mix = self.config.offline_mix;
        self.offline = serde_json::json!({
            "episodes_per_seed": offline_total.0 / n,
            "real_steps_per_seed": offline_total.1 / n as u64,
            "mix": {"expert": round3(mix.expert), "noisy_expert": round3(mix.noisy), "random": round3(mix.random), "noise": mix.noise},
            "instances": "training split only (fold != 0)",
            "expert_faults": faults,
        });
        self.methods = results
            .iter()
            .map(|(k, v)| (k.clone(), summarise(v.clone())))
            .collect();
        self.seconds = started.elapsed().as_secs_f64();
        self.complete = self.seeds_done.len() == self.config.seeds.len();
    }
}
