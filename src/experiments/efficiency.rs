//! `dreamgym efficiency`: the real interactions DreamGym saves, measured against a baseline
//! trained to convergence — the paper's claim (0 online real steps against RL with 80K; 5K with
//! sim-to-real beating it), on our envs.
//!
//! Per seed, on the same offline seed data (real, training instances):
//! * `real_only`: a fresh learner (behaviour-cloned on the offline data first when
//!   `run.bc_warm_start`) trained in the real env at each budget of `real_budgets` — **one run
//!   per budget**, its learning rate annealed over that budget, so every point is a run that was
//!   given exactly that budget rather than a snapshot of a longer one;
//! * `dreamgym`: trained in the experience model for `run.iterations` iterations with the
//!   curriculum — no online real step;
//! * `dreamgym_s2r`: that DreamGym policy continued in the real env at each budget of
//!   `s2r_budgets` (one run per budget, each from the same DreamGym policy, at `s2r_lr_scale` x
//!   `policy.lr` annealed over the budget);
//! * `offline_bc` (the warm start as it is) and `random`, for reference.
//!
//! **Real interactions** are counted the same way for every method: the offline seed steps the
//! method used (the warm start, the model's fit) plus its online real steps. Synthetic steps
//! are reported apart and cost no real interaction.
//!
//! The headline ([`Headline`]): real_only's converged success, DreamGym's success as a share of
//! it, and DreamGym-S2R's saving factor (see `crate::experiments::saving`), each over the seeds with 95%
//! t-intervals. Seeds are independent and may run in parallel (`--jobs`, one process each);
//! the summary does not depend on how many ran at once.

use crate::experiments::methods::{Method, Played};
use crate::experiments::saving::{Bound, Saving, saving};
use crate::experiments::stats::{mean_ci, t_interval};
use crate::support::envs::EnvFactory;
use crate::support::progress::Progress;
use crate::support::ron_file::RangeError;
use crate::training::config::RunConfig;
use crate::training::context::SeedContext;
use crate::training::offline::collect_offline;
use crate::training::synthetic::Switches;
use anyhow::{Context, Result};
use dreamgym_policy::SelectedDevice;
use dreamgym_sim::policy::ExpertFaults;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of `dreamgym efficiency` (RON; every field optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EfficiencyConfig {
    /// What the methods share, as for `dreamgym run`: task, seeds, offline data, the learner,
    /// the experience model, the curriculum, evaluation. Its `iterations` are DreamGym's
    /// iterations in the model (synthetic steps are cheap: give it what it needs to converge);
    /// `s2r_share`, `ablations` and `curve_points` are not used here.
    pub run: RunConfig,
    /// Online real steps of the real_only runs, ascending; the largest should be where it has
    /// converged (the summary says whether the last two points agree within
    /// `convergence_tolerance`). Each is rounded to whole policy iterations.
    pub real_budgets: Vec<u64>,
    /// Online real steps of the DreamGym-S2R runs, ascending (rounded likewise).
    pub s2r_budgets: Vec<u64>,
    /// real_only counts as converged when the mean success of its last two budgets differs by
    /// at most this.
    pub convergence_tolerance: f32,
}

impl Default for EfficiencyConfig {
    fn default() -> Self {
        Self {
            run: RunConfig {
                iterations: 150,
                // five seeds: a paired comparison of two settings needs them (t = 2.78)
                seeds: vec![1, 2, 3, 4, 5],
                ..RunConfig::default()
            },
            real_budgets: vec![5_000, 20_000, 80_000, 320_000],
            s2r_budgets: vec![1_000, 2_500, 5_000],
            convergence_tolerance: 0.03,
        }
    }
}

/// The largest budget accepted (a typo such as `u64::MAX` is refused, not run without end).
const MAX_BUDGET: u64 = crate::training::config::MAX_REAL_BUDGET;

impl EfficiencyConfig {
    /// Checks every setting's range; the first one outside is the error.
    pub fn validate(&self) -> Result<(), RangeError> {
        self.run.validate()?;
        for (field, budgets) in [
            ("real_budgets", &self.real_budgets),
            ("s2r_budgets", &self.s2r_budgets),
        ] {
            let ascending = budgets.windows(2).all(|w| w[0] < w[1]);
            let in_range = budgets.iter().all(|&b| (1..=MAX_BUDGET).contains(&b));
            if budgets.is_empty() || !ascending || !in_range {
                return Err(RangeError {
                    field: field.into(),
                    value: format!("{budgets:?}"),
                    allowed: format!(
                        "at least one budget, strictly ascending, each in 1..={MAX_BUDGET}"
                    ),
                });
            }
        }
        let t = self.convergence_tolerance;
        if !(t.is_finite() && (0.0..=1.0).contains(&t)) {
            return Err(RangeError {
                field: "convergence_tolerance".into(),
                value: t.to_string(),
                allowed: "a success difference in [0, 1]".into(),
            });
        }
        Ok(())
    }

    /// The online budgets `method` is trained at: the ladders of real_only and dreamgym_s2r, a
    /// single 0 for the others.
    fn budgets_of(&self, method: &str) -> Vec<u64> {
        match method {
            "real_only" => self.real_budgets.clone(),
            "dreamgym_s2r" => self.s2r_budgets.clone(),
            _ => vec![0],
        }
    }

    /// Policy iterations of one real run of `budget` online real steps (at least one), one
    /// iteration costing `per_iteration` real steps (`SeedContext::steps_per_iteration`).
    fn iterations_for(budget: u64, per_iteration: f64) -> usize {
        ((budget as f64 / per_iteration.max(1.0)).round() as usize).max(1)
    }

    /// Real steps per iteration for the progress ETA, before any data is seen (GRPO's episodes
    /// taken as half the step cap).
    fn eta_steps_per_iteration(&self) -> f64 {
        let p = &self.run.policy;
        p.steps_per_iteration(p.max_episode_steps as f64 / 2.0)
    }

    /// About how many policy iterations the whole experiment runs (for the progress ETA).
    pub fn planned_iterations(&self) -> u64 {
        let real: usize = self
            .real_budgets
            .iter()
            .chain(&self.s2r_budgets)
            .map(|&b| Self::iterations_for(b, self.eta_steps_per_iteration()))
            .sum();
        ((self.run.iterations + real) * self.run.seeds.len()) as u64
    }
}

/// One trained policy of one method on one seed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SeedPoint {
    /// Seed.
    pub seed: u64,
    /// Held-out success.
    pub success: f32,
    /// Online real steps taken.
    pub online_real_steps: u64,
    /// Offline seed steps the method used.
    pub offline_steps: u64,
    /// `offline_steps + online_real_steps`.
    pub real_interactions: u64,
    /// Steps in the experience model.
    pub synthetic_steps: u64,
    /// DreamGym: training success inside the experience model over its last 5 iterations (its
    /// held-out success in the real env against this is the sim-to-real gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_success: Option<f32>,
}

/// One budget of one method over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    /// The online real budget asked for (0 for methods with no online step).
    pub budget: u64,
    /// Mean real interactions (offline + online) over the seeds.
    pub real_interactions: f64,
    /// Mean synthetic steps.
    pub synthetic_steps: f64,
    /// Mean held-out success.
    pub success: f32,
    /// 95% t-interval over the seeds, clipped to [0, 1].
    pub ci_low: f32,
    /// Upper end.
    pub ci_high: f32,
    /// Per seed.
    pub seeds: Vec<SeedPoint>,
}

/// A mean over seeds with its 95% t-interval (unclipped: for ratios).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Interval {
    /// Mean.
    pub mean: f32,
    /// Lower end.
    pub ci_low: f32,
    /// Upper end.
    pub ci_high: f32,
}

impl Interval {
    fn of(xs: &[f32]) -> Self {
        let (mean, ci_low, ci_high) = t_interval(xs);
        Self {
            mean,
            ci_low,
            ci_high,
        }
    }

    /// For ratios (> 0): the t-interval of their logarithms, back on the ratio scale — the
    /// geometric mean, and an interval that stays positive and treats 2x and 1/2x alike.
    fn geometric(xs: &[f32]) -> Self {
        let logs: Vec<f32> = xs.iter().map(|x| x.max(f32::MIN_POSITIVE).ln()).collect();
        let (mean, ci_low, ci_high) = t_interval(&logs);
        Self {
            mean: mean.exp(),
            ci_low: ci_low.exp(),
            ci_high: ci_high.exp(),
        }
    }
}

/// real_only at its largest budget.
#[derive(Debug, Clone, Serialize)]
pub struct Converged {
    /// Mean held-out success at the largest budget, with its interval.
    pub success: f32,
    /// Lower end (clipped to [0, 1]).
    pub ci_low: f32,
    /// Upper end.
    pub ci_high: f32,
    /// Mean real interactions it used.
    pub real_interactions: f64,
    /// Mean success at the largest budget minus at the one before.
    pub last_change: f32,
    /// Whether `|last_change| <= convergence_tolerance`, or the success is within it of 1.
    pub converged: bool,
}

/// DreamGym with no online real step against converged real_only.
#[derive(Debug, Clone, Serialize)]
pub struct ZeroOnline {
    /// Mean held-out success, with its interval.
    pub success: f32,
    /// Lower end.
    pub ci_low: f32,
    /// Upper end.
    pub ci_high: f32,
    /// Mean real interactions (its offline seed steps).
    pub real_interactions: f64,
    /// Its success over real_only's converged success (the mean is the ratio of the means;
    /// the interval is over the per-seed ratios).
    pub share_of_real_only: Interval,
    /// Mean training success inside the experience model at the end (against `success` in the
    /// real env: the sim-to-real gap).
    pub model_success: Option<f32>,
    /// The target: a share of at least 0.9 (on the mean).
    pub target_0_9_met: bool,
    /// Its saving factor: the real interactions real_only needs for DreamGym's success over
    /// DreamGym's (its offline steps), from the mean curves.
    pub saving: Option<Saving>,
    /// The same per seed: geometric mean and interval, when every seed gives a value.
    pub saving_per_seed: Option<Interval>,
}

/// DreamGym-S2R at one budget: what real_only needs for the same success.
#[derive(Debug, Clone, Serialize)]
pub struct S2rSaving {
    /// The online budget asked for.
    pub budget: u64,
    /// From the mean curves: S2R's mean success against real_only's mean curve.
    pub mean_curves: Option<Saving>,
    /// Per seed: the seed's S2R success against the seed's real_only curve.
    pub per_seed: Vec<Option<Saving>>,
    /// As the paper counts: online real steps only on both sides (the offline seed data both
    /// methods start from left out) — real_only's online steps for S2R's success over S2R's
    /// online steps, from the mean curves.
    pub online_only: Option<Saving>,
    /// The same per seed: geometric mean and interval, when every seed gives a value.
    pub online_only_per_seed: Option<Interval>,
    /// The per-seed factors' geometric mean and 95% interval (a t-interval of their logs), when
    /// every one is a value (not a bound).
    pub factor: Option<Interval>,
}

/// Reaching real_only's converged success (within its interval) with sim-to-real.
#[derive(Debug, Clone, Serialize)]
pub struct ReachConverged {
    /// The level: the lower end of real_only's converged interval.
    pub target_success: f32,
    /// The smallest S2R budget whose mean success reaches it, if any.
    pub s2r_budget: Option<u64>,
    /// Its saving factor against real_only's mean curve at that level.
    pub saving: Option<Saving>,
    /// The same counting online real steps only (as the paper does).
    pub online_only: Option<Saving>,
    /// The target: a factor of at least 20 (a value or an at-least bound).
    pub target_20x_met: bool,
}

/// The figures a reader wants first.
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    /// (a) real_only's converged success.
    pub real_only: Converged,
    /// (b) DreamGym with 0 online real steps, as a share of it.
    pub dreamgym: ZeroOnline,
    /// (c) the saving factor of DreamGym-S2R at each of its budgets.
    pub s2r: Vec<S2rSaving>,
    /// (c') the real interactions to real_only's converged success, real_only over S2R.
    pub reach_converged: ReachConverged,
    /// How the factors were computed.
    pub method: String,
}

/// Everything `dreamgym efficiency` measured.
#[derive(Debug, Clone, Serialize)]
pub struct EfficiencySummary {
    /// Env id.
    pub env: String,
    /// Settings.
    pub config: EfficiencyConfig,
    /// Backend used.
    pub backend: String,
    /// Mean offline seed steps per seed.
    pub offline_steps_per_seed: f64,
    /// Curves keyed `real_only`, `dreamgym_s2r` (one point per budget), `dreamgym`,
    /// `offline_bc`, `random` (one point each).
    pub curves: BTreeMap<String, Vec<CurvePoint>>,
    /// The headline figures (once a seed is done).
    pub headline: Option<Headline>,
    /// Notes on how to read the figures.
    pub notes: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// False while seeds are still running (the summary is written after every seed).
    pub complete: bool,
    /// The seeds whose results the curves hold.
    pub seeds_done: Vec<u64>,
}

/// What one seed produced: per method, one point per budget (in budget order).
pub(crate) type SeedPoints = BTreeMap<String, Vec<SeedPoint>>;

/// The methods of the experiment, as the summary keys them.
const METHODS: [&str; 5] = [
    "real_only",
    "dreamgym_s2r",
    "dreamgym",
    "offline_bc",
    "random",
];

/// What [`resummarise`] reads back of a written summary: the settings and the per-seed points.
#[derive(Deserialize)]
struct Written {
    env: String,
    config: EfficiencyConfig,
    backend: String,
    seconds: f64,
    seeds_done: Vec<u64>,
    curves: BTreeMap<String, Vec<WrittenPoint>>,
}

#[derive(Deserialize)]
struct WrittenPoint {
    seeds: Vec<SeedPoint>,
}

/// A written summary's settings and per-seed points.
pub(crate) struct WrittenPoints {
    /// Env id.
    pub(crate) env: String,
    /// Settings.
    pub(crate) config: EfficiencyConfig,
    /// Backend used.
    pub(crate) backend: String,
    /// Wall-clock seconds of the run that wrote it.
    pub(crate) seconds: f64,
    /// The seeds done, in the configuration's order.
    pub(crate) seeds_done: Vec<u64>,
    /// Their points, each seed checked to have one per method and budget of `config`.
    pub(crate) done: BTreeMap<u64, SeedPoints>,
}

/// Reads the per-seed points of the `summary.json` at `path` (refusing a seed that misses a
/// point).
pub(crate) fn read_points(path: &std::path::Path) -> Result<WrittenPoints> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let w: Written = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not the summary.json of `dreamgym efficiency`",
            path.display()
        )
    })?;
    let mut done: BTreeMap<u64, SeedPoints> = BTreeMap::new();
    for (method, curve) in &w.curves {
        for point in curve {
            for p in &point.seeds {
                done.entry(p.seed)
                    .or_default()
                    .entry(method.clone())
                    .or_default()
                    .push(*p);
            }
        }
    }
    for seed in &w.seeds_done {
        let points = done.get(seed);
        let whole = points.is_some_and(|p| {
            METHODS
                .iter()
                .all(|m| p.get(*m).map(Vec::len) == Some(w.config.budgets_of(m).len()))
        });
        if !whole {
            anyhow::bail!(
                "{}: seed {seed} does not have a point for every method and budget of its settings",
                path.display()
            );
        }
    }
    Ok(WrittenPoints {
        env: w.env,
        config: w.config,
        backend: w.backend,
        seconds: w.seconds,
        seeds_done: w.seeds_done,
        done,
    })
}

/// The summary of a finished (or partial) experiment recomputed from the per-seed points of
/// its `summary.json` — the curves, the headline and the notes as this version computes them,
/// training nothing (e.g. after an upgrade that adds a figure).
pub fn resummarise(path: &std::path::Path) -> Result<EfficiencySummary> {
    let w = read_points(path)?;
    let mut summary = EfficiencySummary::before_any_seed(w.env, w.config, w.backend);
    summary.seeds_done = w.seeds_done;
    summary.update(&w.done, std::time::Instant::now());
    summary.seconds = w.seconds;
    Ok(summary)
}

/// Runs the experiment on `env_id`, one seed after another in this process (`--jobs N` runs
/// seeds in processes of their own: `crate::experiments::jobs`). `seed_done` gets the summary so
/// far after each seed but the last.
pub fn run(
    env_id: &str,
    cfg: &EfficiencyConfig,
    device: &SelectedDevice,
    progress: &Progress,
    seed_done: &mut dyn FnMut(&EfficiencySummary) -> Result<()>,
) -> Result<EfficiencySummary> {
    let started = std::time::Instant::now();
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("efficiency settings: {e}"))?;
    let factory = EnvFactory::new(env_id, cfg.run.bridge_cmd.as_deref())?;
    let mut summary = EfficiencySummary::before_any_seed(
        env_id.to_string(),
        cfg.clone(),
        device.kind.to_string(),
    );
    let mut done: BTreeMap<u64, SeedPoints> = BTreeMap::new();
    for &seed in &cfg.run.seeds {
        let points = run_seed(cfg, &factory, device, progress, seed)
            .with_context(|| format!("seed {seed}"))?;
        done.insert(seed, points);
        summary.seeds_done.push(seed);
        summary.update(&done, started);
        if !summary.complete {
            seed_done(&summary)?;
        }
    }
    Ok(summary)
}

fn notes(cfg: &EfficiencyConfig) -> Vec<String> {
    let mut notes = vec![
        "real interactions = the offline seed steps a method used (behaviour-cloning warm start, the experience model's fit) + its online real steps; synthetic steps are not real interactions".to_string(),
        "real_only: one fresh run per budget, its learning rate annealed over that budget (every point is a run given exactly that budget)".to_string(),
        format!(
            "dreamgym_s2r: the seed's dreamgym policy continued in the real env, one run per budget, at {} x policy.lr",
            cfg.run.s2r_lr_scale
        ),
        "saving factor: the real interactions real_only needs to reach a success, interpolated on its curve (success linear in log real interactions, first crossing), over those the method used; a target real_only reaches at its smallest budget gives an at-most bound, one it never reaches an at-least bound".to_string(),
    ];
    notes.push(crate::experiments::run::folds_note(&cfg.run));
    if cfg.run.seeds.len() < 3 {
        notes.push(format!(
            "only {} seed(s): the intervals are not meaningful below 3",
            cfg.run.seeds.len()
        ));
    }
    notes
}

/// Every method of one seed.
fn run_seed(
    cfg: &EfficiencyConfig,
    factory: &EnvFactory,
    device: &SelectedDevice,
    progress: &Progress,
    seed: u64,
) -> Result<SeedPoints> {
    progress.phase(&format!(
        "seed {seed}: collecting {} offline episodes",
        cfg.run.offline_episodes
    ));
    let offline = collect_offline(
        factory.open().as_mut(),
        &cfg.run,
        seed,
        &mut ExpertFaults::default(),
    )?;
    let ctx = SeedContext::new(&cfg.run, factory, device, seed, offline, progress, None);
    let mut out = SeedPoints::new();
    let mut keep = |name: &str, played: &Played| {
        let r = &played.result;
        out.entry(name.to_string()).or_default().push(SeedPoint {
            seed,
            success: r.success,
            online_real_steps: r.real_steps,
            offline_steps: r.offline_steps,
            real_interactions: r.offline_steps + r.real_steps,
            synthetic_steps: r.synthetic_steps,
            model_success: r.model_success,
        });
    };
    keep("random", &ctx.play("random", &Method::Random)?);
    keep("offline_bc", &ctx.play("offline_bc", &Method::OfflineBc)?);
    let dreamgym = ctx.play("dreamgym", &Method::DreamGym(Switches::ALL))?;
    keep("dreamgym", &dreamgym);
    for &budget in &cfg.s2r_budgets {
        let s2r = Method::SimToReal {
            from: &dreamgym,
            iterations: EfficiencyConfig::iterations_for(budget, ctx.steps_per_iteration()),
            model_update: true,
        };
        keep("dreamgym_s2r", &ctx.play("dreamgym_s2r", &s2r)?);
    }
    for &budget in &cfg.real_budgets {
        let real_only = Method::RealOnly {
            iterations: EfficiencyConfig::iterations_for(budget, ctx.steps_per_iteration()),
        };
        keep("real_only", &ctx.play("real_only", &real_only)?);
    }
    Ok(out)
}

impl EfficiencySummary {
    /// The summary of an experiment with no seed done yet.
    pub(crate) fn before_any_seed(env: String, config: EfficiencyConfig, backend: String) -> Self {
        Self {
            env,
            notes: notes(&config),
            config,
            backend,
            offline_steps_per_seed: 0.0,
            curves: BTreeMap::new(),
            headline: None,
            seconds: 0.0,
            complete: false,
            seeds_done: vec![],
        }
    }

    /// Brings the curves and the headline up to date with the seeds in `done`.
    pub(crate) fn update(&mut self, done: &BTreeMap<u64, SeedPoints>, started: std::time::Instant) {
        let order: Vec<&SeedPoints> = self.seeds_done.iter().filter_map(|s| done.get(s)).collect();
        let mut curves = BTreeMap::new();
        for method in METHODS {
            let curve: Vec<CurvePoint> = self
                .config
                .budgets_of(method)
                .iter()
                .enumerate()
                .map(|(i, &budget)| {
                    let seeds: Vec<SeedPoint> = order.iter().map(|p| p[method][i]).collect();
                    curve_point(budget, seeds)
                })
                .collect();
            curves.insert(method.to_string(), curve);
        }
        self.offline_steps_per_seed = curves["offline_bc"][0]
            .seeds
            .iter()
            .map(|p| p.offline_steps as f64)
            .sum::<f64>()
            / order.len().max(1) as f64;
        self.headline = headline(&curves, self.config.convergence_tolerance);
        self.curves = curves;
        self.seconds = started.elapsed().as_secs_f64();
        self.complete = self.seeds_done.len() == self.config.run.seeds.len();
    }
}

fn curve_point(budget: u64, seeds: Vec<SeedPoint>) -> CurvePoint {
    let n = seeds.len().max(1) as f64;
    let s: Vec<f32> = seeds.iter().map(|p| p.success).collect();
    let (success, ci_low, ci_high) = mean_ci(&s);
    CurvePoint {
        budget,
        real_interactions: seeds
            .iter()
            .map(|p| p.real_interactions as f64)
            .sum::<f64>()
            / n,
        synthetic_steps: seeds.iter().map(|p| p.synthetic_steps as f64).sum::<f64>() / n,
        success,
        ci_low,
        ci_high,
        seeds,
    }
}

/// The geometric mean and interval of saving factors, when every one is a value (not a bound).
fn geometric_of_values(savings: impl Iterator<Item = Option<Saving>>) -> Option<Interval> {
    let factors: Option<Vec<f32>> = savings
        .map(|s| {
            s.filter(|s| s.bound == Bound::Exact)
                .map(|s| s.factor as f32)
        })
        .collect();
    factors
        .filter(|f| !f.is_empty())
        .map(|f| Interval::geometric(&f))
}

/// A point's mean online real steps over its seeds.
fn online(p: &CurvePoint) -> f64 {
    p.seeds
        .iter()
        .map(|s| s.online_real_steps as f64)
        .sum::<f64>()
        / p.seeds.len().max(1) as f64
}

/// The headline figures from the curves (`None` before any seed is done).
fn headline(curves: &BTreeMap<String, Vec<CurvePoint>>, tolerance: f32) -> Option<Headline> {
    let real = curves.get("real_only")?;
    let last = real.last()?;
    if last.seeds.is_empty() {
        return None;
    }
    let last_change = match real.len() {
        0 | 1 => f32::NAN,
        n => last.success - real[n - 2].success,
    };
    let real_only = Converged {
        success: last.success,
        ci_low: last.ci_low,
        ci_high: last.ci_high,
        real_interactions: last.real_interactions,
        last_change,
        // within the tolerance of its last budget, or of the ceiling (success cannot rise
        // above 1, so a curve that reaches it has converged)
        converged: last_change.abs() <= tolerance || last.success >= 1.0 - tolerance,
    };
    let mean_curve: Vec<(f64, f32)> = real
        .iter()
        .map(|p| (p.real_interactions, p.success))
        .collect();
    // seed k's real_only curve against the real steps `x` counts (all, or online only)
    let seed_curve = |k: usize, x: fn(&SeedPoint) -> u64| -> Vec<(f64, f32)> {
        real.iter()
            .map(|p| (x(&p.seeds[k]) as f64, p.seeds[k].success))
            .collect()
    };
    let all_real = |s: &SeedPoint| s.real_interactions;
    // as the paper counts: online real steps only, on both sides
    let online_only = |s: &SeedPoint| s.online_real_steps;
    let online_curve: Vec<(f64, f32)> = real.iter().map(|p| (online(p), p.success)).collect();
    let dg = &curves.get("dreamgym")?[0];
    let shares: Vec<f32> = dg
        .seeds
        .iter()
        .zip(&last.seeds)
        .map(|(d, r)| d.success / r.success.max(1e-6))
        .collect();
    let share = dg.success / last.success.max(1e-6);
    let dreamgym = ZeroOnline {
        success: dg.success,
        ci_low: dg.ci_low,
        ci_high: dg.ci_high,
        real_interactions: dg.real_interactions,
        share_of_real_only: Interval {
            mean: share,
            ..Interval::of(&shares)
        },
        target_0_9_met: share >= 0.9,
        model_success: {
            let m: Vec<f32> = dg.seeds.iter().filter_map(|p| p.model_success).collect();
            (!m.is_empty()).then(|| m.iter().sum::<f32>() / m.len() as f32)
        },
        saving: saving(&mean_curve, dg.success, dg.real_interactions),
        saving_per_seed: geometric_of_values(
            dg.seeds
                .iter()
                .enumerate()
                .map(|(k, d)| saving(&seed_curve(k, all_real), d.success, all_real(d) as f64)),
        ),
    };
    let s2r_curve = curves.get("dreamgym_s2r")?;
    let s2r = s2r_curve
        .iter()
        .map(|p| {
            let per_seed: Vec<Option<Saving>> = p
                .seeds
                .iter()
                .enumerate()
                .map(|(k, s)| saving(&seed_curve(k, all_real), s.success, all_real(s) as f64))
                .collect();
            S2rSaving {
                budget: p.budget,
                mean_curves: saving(&mean_curve, p.success, p.real_interactions),
                factor: geometric_of_values(per_seed.iter().copied()),
                per_seed,
                online_only: saving(&online_curve, p.success, online(p)),
                online_only_per_seed: geometric_of_values(p.seeds.iter().enumerate().map(
                    |(k, s)| {
                        saving(
                            &seed_curve(k, online_only),
                            s.success,
                            online_only(s) as f64,
                        )
                    },
                )),
            }
        })
        .collect();
    let target = last.ci_low;
    let reached = s2r_curve.iter().find(|p| p.success >= target);
    let reach_saving = reached.and_then(|p| saving(&mean_curve, target, p.real_interactions));
    let reach_converged = ReachConverged {
        target_success: target,
        s2r_budget: reached.map(|p| p.budget),
        target_20x_met: reach_saving.is_some_and(|s| s.factor >= 20.0 && s.bound != Bound::AtMost),
        saving: reach_saving,
        online_only: reached.and_then(|p| saving(&online_curve, target, online(p))),
    };
    Some(Headline {
        real_only,
        dreamgym,
        s2r,
        reach_converged,
        method: "factor = real interactions real_only needs for the success (interpolated on its curve: success linear in log real interactions between the two budgets around it, first crossing) / real interactions the method used, counting offline seed steps + online real steps on both sides; online_only: the same counting online real steps only (the paper's counting: the offline data both start from left out; DreamGym with 0 online steps has no such factor); bound at_most: real_only reaches it at its smallest budget; more_than: never within its budgets".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(successes: &[f32], real: u64) -> Vec<SeedPoint> {
        successes
            .iter()
            .enumerate()
            .map(|(k, &success)| SeedPoint {
                seed: k as u64 + 1,
                success,
                online_real_steps: real.saturating_sub(1000),
                offline_steps: 1000,
                real_interactions: real,
                synthetic_steps: 0,
                model_success: None,
            })
            .collect()
    }

    fn curves() -> BTreeMap<String, Vec<CurvePoint>> {
        let mut c = BTreeMap::new();
        c.insert(
            "real_only".to_string(),
            vec![
                curve_point(1_000, seeds(&[0.2, 0.2], 2_000)),
                curve_point(10_000, seeds(&[0.6, 0.6], 11_000)),
                curve_point(100_000, seeds(&[0.9, 0.9], 101_000)),
                curve_point(1_000_000, seeds(&[0.91, 0.91], 1_001_000)),
            ],
        );
        c.insert(
            "dreamgym".to_string(),
            vec![curve_point(0, seeds(&[0.81, 0.81], 1_000))],
        );
        c.insert(
            "dreamgym_s2r".to_string(),
            vec![
                curve_point(1_000, seeds(&[0.6, 0.6], 2_000)),
                curve_point(4_000, seeds(&[0.92, 0.92], 5_000)),
            ],
        );
        c
    }

    #[test]
    fn the_headline_reads_the_curves() {
        let h = headline(&curves(), 0.03).unwrap();
        assert_eq!(h.real_only.success, 0.91);
        assert!(h.real_only.converged, "{}", h.real_only.last_change);
        // 0.81 / 0.91
        assert!((h.dreamgym.share_of_real_only.mean - 0.8901).abs() < 1e-3);
        assert!(!h.dreamgym.target_0_9_met);
        // S2R at 1k: 0.6 with 2,000 real interactions; real_only reaches 0.6 at 11,000
        let first = h.s2r[0].mean_curves.unwrap();
        assert_eq!(first.bound, Bound::Exact);
        assert!((first.factor - 5.5).abs() < 1e-6, "{}", first.factor);
        assert!((h.s2r[0].factor.unwrap().mean - 5.5).abs() < 1e-4);
        // as the paper counts, online steps only: real_only reaches 0.6 with 10,000 online
        // steps, S2R with 1,000
        let online = h.s2r[0].online_only.unwrap();
        assert!((online.factor - 10.0).abs() < 1e-6, "{}", online.factor);
        assert!((h.s2r[0].online_only_per_seed.unwrap().mean - 10.0).abs() < 1e-3);
        // S2R at 4k: 0.92, more than real_only ever reached
        let second = h.s2r[1].mean_curves.unwrap();
        assert_eq!(second.bound, Bound::MoreThan);
        assert!(h.s2r[1].factor.is_none(), "bounds have no interval");
        // the converged level (ci_low = 0.91 with no spread) is reached at 4k: 0.91 between
        // 101,000 (0.9) and 1,001,000 (0.91) -> all the way: 1,001,000 / 5,000
        let reach = h.reach_converged;
        assert_eq!(reach.s2r_budget, Some(4_000));
        assert!((reach.saving.unwrap().factor - 200.2).abs() < 0.01);
        assert!((reach.online_only.unwrap().factor - 250.0).abs() < 0.01);
        assert!(reach.target_20x_met);
    }

    #[test]
    fn factor_intervals_are_geometric() {
        // 2 and 8: geometric mean 4; logs ln2, ln8 -> sd = ln4 / sqrt2, half = 12.706 * ln4 / 2
        let i = Interval::geometric(&[2.0, 8.0]);
        assert!((i.mean - 4.0).abs() < 1e-4, "{}", i.mean);
        let half = 12.706f32 * 4f32.ln() / 2.0;
        assert!((i.ci_low - (4f32.ln() - half).exp()).abs() < 1e-6);
        assert!(i.ci_low > 0.0, "stays positive");
    }

    #[test]
    fn reaching_the_ceiling_is_converged() {
        let mut c = curves();
        c.get_mut("real_only").unwrap()[3] = curve_point(1_000_000, seeds(&[1.0, 1.0], 1_001_000));
        c.get_mut("real_only").unwrap()[2] = curve_point(100_000, seeds(&[0.9, 0.9], 101_000));
        let h = headline(&c, 0.03).unwrap();
        assert!((h.real_only.last_change - 0.1).abs() < 1e-6);
        assert!(h.real_only.converged, "1.0 cannot rise further");
    }

    #[test]
    fn a_moving_last_point_is_not_converged() {
        let mut c = curves();
        c.get_mut("real_only").unwrap()[3] =
            curve_point(1_000_000, seeds(&[0.96, 0.96], 1_001_000));
        let h = headline(&c, 0.03).unwrap();
        assert!(!h.real_only.converged);
        assert!((h.real_only.last_change - 0.06).abs() < 1e-6);
    }

    #[test]
    fn budgets_must_ascend() {
        let mut cfg = EfficiencyConfig {
            real_budgets: vec![10, 5],
            ..Default::default()
        };
        assert_eq!(cfg.validate().unwrap_err().field, "real_budgets");
        cfg.real_budgets = vec![5, 10];
        cfg.s2r_budgets = vec![];
        assert_eq!(cfg.validate().unwrap_err().field, "s2r_budgets");
        cfg.s2r_budgets = vec![1];
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn the_shipped_experiment_files_are_valid() {
        for name in ["efficiency-household.ron", "efficiency-babyai.ron"] {
            let path = format!("{}/experiments/{name}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            let cfg: EfficiencyConfig =
                ron::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            cfg.validate().unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(cfg.run.seeds.len(), 5, "{path}: five seeds");
        }
    }

    #[test]
    fn budgets_round_to_whole_iterations() {
        let cfg = EfficiencyConfig::default();
        // the run's learner: 4 envs x 64 steps = 256 per iteration
        let per = cfg.run.policy.steps_per_iteration(10.0);
        assert_eq!(EfficiencyConfig::iterations_for(5_000, per), 20);
        assert_eq!(EfficiencyConfig::iterations_for(1, per), 1);
    }
}
