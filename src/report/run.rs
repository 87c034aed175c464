//! Writing a run's `summary.json` and a self-contained `report.html` (inline SVG charts drawn
//! by `crate::report::charts`, no scripts, no network).

use crate::experiments::run::{MethodSummary, RunSummary};
use crate::experiments::stats::{mean_ci, t_interval};
use crate::report::charts::{Chart, Series};
use crate::report::dots::{DotRow, Dots, best_first};
use crate::report::html::{dots_figure, esc, figure, notes_and_settings, page_start};
use crate::support::files::replace_file;
use crate::training::config::EvalFold;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

fn model_success(m: &crate::experiments::run::MethodSummary) -> String {
    let xs: Vec<f32> = m.seeds.iter().filter_map(|r| r.model_success).collect();
    if xs.is_empty() {
        "-".into()
    } else {
        format!("{:.3}", xs.iter().sum::<f32>() / xs.len() as f32)
    }
}

/// The mean model→real gap over the seeds (`-` for methods not trained in a model).
pub(crate) fn model_real_gap(m: &crate::experiments::run::MethodSummary) -> String {
    let xs: Vec<f32> = m.seeds.iter().filter_map(|r| r.model_real_gap).collect();
    if xs.is_empty() {
        "-".into()
    } else {
        format!("{:+.3}", xs.iter().sum::<f32>() / xs.len() as f32)
    }
}

/// The mean on-policy next-state exact and false success over the seeds (`-` where none).
fn on_policy(m: &crate::experiments::run::MethodSummary) -> String {
    let xs: Vec<_> = m.seeds.iter().filter_map(|r| r.on_policy).collect();
    if xs.is_empty() {
        return "-".into();
    }
    let n = xs.len() as f64;
    format!(
        "{:.3} / {:.3}",
        xs.iter().map(|f| f.next_state_exact).sum::<f64>() / n,
        xs.iter().map(|f| f.false_success_rate).sum::<f64>() / n
    )
}

/// The fidelity figures shown, each with what it means.
const FIDELITY_ROWS: [(&str, &str); 8] = [
    (
        "next_state_exact",
        "share of steps whose predicted next observation has exactly the real one's lines",
    ),
    (
        "next_state_f1",
        "mean line-level F1 of the predicted next observation against the real one",
    ),
    (
        "reward_accuracy",
        "share of steps with the real reward (within 0.001)",
    ),
    (
        "false_success_rate",
        "share of the real non-success steps the model predicted as a success",
    ),
    ("done_accuracy", "share of steps with the real done flag"),
    (
        "eps_r",
        "mean absolute reward error (the paper's reward error)",
    ),
    (
        "eps_p",
        "share of wrong next states (the paper's transition error)",
    ),
    (
        "bound_penalty",
        "the model's term in the paper's policy-improvement bound, 2 (eps_r / (1 - g) + 2 g eps_p / (1 - g)^2) with g = 0.99 and rewards in [0, 1]: a worst-case loss of return from training in the model instead of the real env; it grows with 1 / (1 - g)^2, so it is large whenever eps_p is not zero, and is a guide for comparing models, not a prediction",
    ),
];

/// Renders the HTML report.
pub fn html(s: &RunSummary) -> String {
    let mut out = page_start("dreamgym report");
    let _ = write!(out, "<h1>dreamgym run: {}</h1>", esc(&s.env));
    if !s.complete {
        let _ = write!(
            out,
            "<p><strong>Incomplete run: results of seeds {:?} of {:?} only.</strong></p>",
            s.seeds_done, s.config.seeds
        );
    }
    let _ = write!(
        out,
        "<p>{} seed(s), backend {}, {:.0} s. Offline seed data per seed: {} episodes, {} real steps (mix {}), training instances only.</p>",
        s.config.seeds.len(),
        esc(&s.backend),
        s.seconds,
        s.offline["episodes_per_seed"],
        s.offline["real_steps_per_seed"],
        esc(&s.offline["mix"].to_string())
    );
    if let Some(line) = expert_faults_line(&s.offline) {
        let _ = write!(out, "<p>{}</p>", esc(&line));
    }
    success_table(&mut out, s);
    success_chart(&mut out, s);
    gap_chart(&mut out, s);
    training_charts(&mut out, s);
    fidelity_table(&mut out, s);
    notes_and_settings(&mut out, &s.notes, &s.config);
    out
}

/// What the env's expert failed on during the offline collection (`offline.expert_faults` of a
/// summary), as a sentence; `None` where it never failed.
pub fn expert_faults_line(offline: &serde_json::Value) -> Option<String> {
    let f = &offline["expert_faults"];
    let n = |k: &str| f[k].as_u64().unwrap_or(0);
    (n("raised") + n("timed_out") + n("crashed") > 0).then(|| {
        format!(
            "the env's expert failed during the offline collection (all seeds, fidelity episodes included): {} raised an error, {} timed out, {} crashed; {} of {} instances affected, {} given up",
            n("raised"),
            n("timed_out"),
            n("crashed"),
            n("faulty"),
            n("attempted"),
            n("abandoned")
        )
    })
}

/// The held-out success of every method, with its interval and the interactions it used.
fn success_table(out: &mut String, s: &RunSummary) {
    out.push_str(match s.config.eval_fold {
        EvalFold::HeldOut => "<h2>Held-out success</h2>",
        EvalFold::Validation => "<h2>Validation-fold success</h2><p><strong>A tuning run: every method was evaluated on the validation fold (training instances kept out of training), never on the held-out fold. Report held-out figures, not these.</strong></p>",
    });
    out.push_str("<table><tr><th>method</th><th>success</th><th>95% CI</th><th>online real steps</th><th>offline real steps</th><th>synthetic steps</th><th>training success in the model</th><th>model→real gap</th><th>on-policy fidelity: next-state exact / false success</th></tr>");
    for (name, m) in &s.methods {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.3}</td><td>[{:.3}, {:.3}]</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            m.success,
            m.ci_low,
            m.ci_high,
            m.real_steps,
            m.offline_steps,
            m.synthetic_steps,
            model_success(m),
            model_real_gap(m),
            on_policy(m)
        );
    }
    out.push_str("</table><p>The model→real gap is success inside the model (last 5 iterations) minus held-out real success: far above 0, the policy found a model error. On-policy fidelity scores the model on the trained policy's own held-out evaluation episodes (no extra real steps).</p>");
}

/// The methods' held-out success as dots with their 95% intervals, best first, with
/// offline_bc's and random's as reference lines.
fn success_chart(out: &mut String, s: &RunSummary) {
    let mut rows: Vec<DotRow> = s
        .methods
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "offline_bc" | "random"))
        .map(|(name, m)| DotRow::new(name, (m.success, m.ci_low, m.ci_high)))
        .collect();
    best_first(&mut rows);
    let references = ["offline_bc", "random"]
        .iter()
        .filter_map(|name| {
            s.methods
                .get(*name)
                .map(|m| (name.to_string(), f64::from(m.success)))
        })
        .collect();
    out.push_str(&dots_figure(&Dots {
        title: format!(
            "Held-out success: mean over {} seed(s) with its 95% interval",
            s.seeds_done.len()
        ),
        x_label: "held-out success".into(),
        x_range: (0.0, 1.0),
        rows,
        references,
    }));
}

/// The model→real gap of the methods trained in a model: mean over seeds with its 95%
/// interval (unclipped), 0 as the reference.
fn gap_chart(out: &mut String, s: &RunSummary) {
    let mut rows: Vec<DotRow> = s
        .methods
        .iter()
        .filter_map(|(name, m)| {
            let gaps: Vec<f32> = m.seeds.iter().filter_map(|r| r.model_real_gap).collect();
            (!gaps.is_empty()).then(|| DotRow::new(name, t_interval(&gaps)))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    best_first(&mut rows);
    let lo = rows.iter().map(|r| r.low).fold(-0.2, f64::min).max(-1.0);
    let hi = rows.iter().map(|r| r.high).fold(0.2, f64::max).min(1.0);
    out.push_str(&dots_figure(&Dots {
        title: "Model→real gap: training success inside the model minus held-out real success"
            .into(),
        x_label: "model→real gap (far above 0: the policy found a model error)".into(),
        x_range: (lo - 0.05, hi + 0.05),
        rows,
        references: vec![("no gap".into(), 0.0)],
    }));
}

/// The mean over seeds of per-seed curves (point by point, as far as every seed's curve goes)
/// with its 95% interval as a band.
fn mean_curve(name: &str, curves: &[&[(u64, f32)]]) -> Option<Series> {
    let len = curves.iter().map(|c| c.len()).min()?;
    if len == 0 {
        return None;
    }
    let mut points = vec![];
    let mut band = vec![];
    for i in 0..len {
        let x = curves.iter().map(|c| c[i].0 as f64).sum::<f64>() / curves.len() as f64;
        let ys: Vec<f32> = curves.iter().map(|c| c[i].1).collect();
        let (mean, low, high) = mean_ci(&ys);
        points.push((x, f64::from(mean)));
        band.push((x, f64::from(low), f64::from(high)));
    }
    Some(Series {
        name: format!("{name} (mean of {})", curves.len()),
        points,
        band,
        ..Default::default()
    })
}

/// A method's held-out success as one point at `x` with its interval as a bar.
fn held_out_point(name: &str, m: &MethodSummary, x: f64) -> Series {
    Series {
        name: format!("{name}: held-out success"),
        points: vec![(x, f64::from(m.success))],
        bars: vec![(x, f64::from(m.ci_low), f64::from(m.ci_high))],
        ..Default::default()
    }
}

/// Training success against online real interactions and, apart, inside the model against
/// synthetic steps, each the mean over seeds with a shaded 95% interval; then the first
/// seed's curriculum difficulty over iterations.
fn training_charts(out: &mut String, s: &RunSummary) {
    let mut series = vec![];
    for name in ["real_only", "dreamgym_s2r"] {
        if let Some(m) = s.methods.get(name) {
            let curves: Vec<&[(u64, f32)]> = m.seeds.iter().map(|r| r.curve.as_slice()).collect();
            series.extend(mean_curve(name, &curves));
        }
    }
    // drawn last, on top: the point every S2R curve starts from
    if let Some(m) = s.methods.get("dreamgym") {
        series.push(held_out_point("dreamgym (0 online steps)", m, 0.0));
    }
    out.push_str(&figure(&Chart {
        title: "Training success against online real interactions (mean over seeds, shaded: 95% interval)".into(),
        x_label: "online real interactions".into(),
        y_label: "training success".into(),
        log_x: false,
        y_range: (0.0, 1.0),
        series,
    }));
    out.push_str("<p>real_only and dreamgym_s2r: training success along their runs in the real env (dreamgym_s2r starts at the dreamgym policy's held-out success). dreamgym takes no online real step: its point at 0 is its held-out success with its interval.</p>");
    let mut synthetic = vec![];
    for (name, m) in &s.methods {
        let curves: Vec<&[(u64, f32)]> = m
            .seeds
            .iter()
            .map(|r| r.synthetic_curve.as_slice())
            .filter(|c| !c.is_empty())
            .collect();
        if curves.len() == m.seeds.len() {
            synthetic.extend(mean_curve(name, &curves));
        }
    }
    if !synthetic.is_empty() {
        out.push_str(&figure(&Chart {
            title: "Training success inside the experience model against synthetic steps (mean over seeds, shaded: 95% interval)".into(),
            x_label: "synthetic steps".into(),
            y_label: "training success in the model".into(),
            log_x: false,
            y_range: (0.0, 1.0),
            series: synthetic,
        }));
        out.push_str("<p>Success inside the model, from a task's beginning (branched episodes left out). Where it ends far above the method's held-out real success, the policy found a model error (the gap chart above).</p>");
    }
    let max_d = s
        .curriculum
        .iter()
        .map(|p| p.max_difficulty)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let difficulty = |f: &dyn Fn(&dreamgym_curriculum::DifficultyPoint) -> f32| {
        s.curriculum
            .iter()
            .map(|p| (p.round as f64, f(p) as f64))
            .collect()
    };
    out.push_str(&figure(&Chart {
        title: "Curriculum: task difficulty over training iterations (first seed)".into(),
        x_label: "iteration".into(),
        y_label: "difficulty".into(),
        log_x: false,
        y_range: (0.0, max_d + 0.5),
        series: vec![
            Series {
                name: "batch mean difficulty".into(),
                points: difficulty(&|p| p.batch_difficulty),
                ..Default::default()
            },
            Series {
                name: "highest in pool".into(),
                points: difficulty(&|p| p.max_difficulty as f32),
                ..Default::default()
            },
        ],
    }));
    let _ = write!(
        out,
        "<p>Generated variants rejected by the feasibility check: {}.</p>",
        s.curriculum_rejected
    );
}

/// The native model's fidelity on real held-out episodes, fit on the offline data and refit
/// after sim-to-real, every row explained.
fn fidelity_table(out: &mut String, s: &RunSummary) {
    out.push_str("<h2>Experience model fidelity</h2><p>The native model fit on seed 1's offline data, predicting real held-out episodes step by step.</p><table>");
    let shown = |v: Option<&serde_json::Value>| {
        v.map_or_else(
            || "-".to_string(),
            |v| {
                v.as_f64()
                    .map_or_else(|| v.to_string(), |x| format!("{x:.3}"))
            },
        )
    };
    let after = s.fidelity_after_s2r.as_ref();
    let _ = write!(
        out,
        "<tr><th>figure</th><th>fit on the offline data</th><th>refit with sim-to-real's real episodes{}</th><th>meaning</th></tr>",
        after.map_or_else(String::new, |a| format!(
            " (+{} transitions, {} s)",
            a["added_real_transitions"],
            shown(a.get("refit_seconds"))
        ))
    );
    for (key, meaning) in FIDELITY_ROWS {
        if s.fidelity.get(key).is_some() {
            let _ = write!(
                out,
                "<tr><td>{key}</td><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
                shown(s.fidelity.get(key)),
                shown(after.and_then(|a| a.get(key))),
                esc(meaning)
            );
        }
    }
    out.push_str("</table>");
}

/// Writes `summary.json` and `report.html` into `dir`, each to a temporary file renamed over the
/// old one, so that a kill while writing leaves the previous version whole.
pub fn write(dir: &Path, s: &RunSummary) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    replace_file(&dir.join("summary.json"), &serde_json::to_string_pretty(s)?)?;
    replace_file(&dir.join("report.html"), &html(s))?;
    Ok(())
}
