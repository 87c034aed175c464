//! Writing `dreamgym efficiency`'s `summary.json`, `report.html` and the plot on its own
//! (`efficiency.svg`): held-out success against real interactions on a log axis, one curve per
//! method with its 95% interval shaded, DreamGym at its offline steps.

use crate::experiments::efficiency::{CurvePoint, EfficiencySummary, Interval};
use crate::experiments::saving::{Bound, Saving};
use crate::report::charts::{self, Chart, Series};
use crate::report::html::{esc, figure, notes_and_settings, page_start};
use crate::support::files::replace_file;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// The plot of the experiment.
pub fn chart(s: &EfficiencySummary) -> Chart {
    let curve = |name: &str| s.curves.get(name).map(Vec::as_slice).unwrap_or(&[]);
    // a curve with its interval shaded, or single points with interval bars
    let series = |name: &str, label: &str, shaded: bool| {
        let c = curve(name);
        let interval = c
            .iter()
            .map(|p| (p.real_interactions, p.ci_low as f64, p.ci_high as f64))
            .collect();
        let (band, bars) = if shaded {
            (interval, vec![])
        } else {
            (vec![], interval)
        };
        Series {
            name: label.to_string(),
            points: c
                .iter()
                .map(|p| (p.real_interactions, p.success as f64))
                .collect(),
            band,
            bars,
            ..Default::default()
        }
    };
    let mut series = vec![
        series("real_only", "real_only (one run per budget)", true),
        series("dreamgym_s2r", "DreamGym-S2R", true),
        series("dreamgym", "DreamGym (0 online real steps)", false),
        series("offline_bc", "offline BC (warm start)", false),
    ];
    if let Some(r) = curve("random").first() {
        series.push(Series {
            name: format!("random policy ({:.3})", r.success),
            // a point inside the x range, drawn as a level across the plot
            points: vec![(s.offline_steps_per_seed.max(1.0), r.success as f64)],
            reference_line: true,
            ..Default::default()
        });
    }
    Chart {
        title: format!("{}: held-out success against real interactions", s.env),
        x_label: "real interactions (offline seed steps + online real steps), log scale".into(),
        y_label: "held-out success".into(),
        log_x: true,
        y_range: (0.0, 1.0),
        series,
    }
}

fn saving_text(s: &Option<Saving>) -> String {
    match s {
        None => "-".into(),
        Some(s) => {
            let rel = match s.bound {
                Bound::Exact => "",
                Bound::AtMost => "<= ",
                Bound::MoreThan => "> ",
            };
            format!(
                "{rel}{:.3}x ({rel}{:.0} / {:.0})",
                s.factor, s.baseline_real_interactions, s.method_real_interactions
            )
        }
    }
}

fn curve_rows(out: &mut String, name: &str, curve: &[CurvePoint]) {
    for p in curve {
        let per_seed: Vec<String> = p
            .seeds
            .iter()
            .map(|q| format!("{:.3}", q.success))
            .collect();
        let _ = write!(
            out,
            "<tr><td>{name}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.3}</td><td>[{:.3}, {:.3}]</td><td>{}</td></tr>",
            p.budget,
            p.real_interactions,
            p.synthetic_steps,
            p.success,
            p.ci_low,
            p.ci_high,
            per_seed.join(" ")
        );
    }
}

/// Renders the HTML report.
pub fn html(s: &EfficiencySummary) -> String {
    let mut out = page_start("dreamgym efficiency");
    let _ = write!(
        out,
        "<h1>dreamgym efficiency: {}</h1><p>{} seed(s) done of {:?}, backend {}, {:.0} s; offline seed data {:.0} real steps per seed.{}</p>",
        esc(&s.env),
        s.seeds_done.len(),
        s.config.run.seeds,
        esc(&s.backend),
        s.seconds,
        s.offline_steps_per_seed,
        if s.complete {
            ""
        } else {
            " <strong>Incomplete: seeds still running.</strong>"
        }
    );
    if let Some(h) = &s.headline {
        out.push_str("<h2>Headline</h2><table><tr><th>figure</th><th>value</th></tr>");
        let r = &h.real_only;
        let _ = write!(
            out,
            "<tr><td>(a) real_only at its largest budget</td><td>{:.3} [{:.3}, {:.3}] with {:.0} real interactions; last step {:+.3} ({})</td></tr>",
            r.success,
            r.ci_low,
            r.ci_high,
            r.real_interactions,
            r.last_change,
            if r.converged {
                "converged"
            } else {
                "not converged within the tolerance"
            }
        );
        let d = &h.dreamgym;
        let _ = write!(
            out,
            "<tr><td>(b) DreamGym, 0 online real steps, share of (a)</td><td>{:.3} [{:.3}, {:.3}] (success {:.3} with {:.0} real interactions{}); target 0.9: {}</td></tr>",
            d.share_of_real_only.mean,
            d.share_of_real_only.ci_low,
            d.share_of_real_only.ci_high,
            d.success,
            d.real_interactions,
            d.model_success
                .map(|m| format!("; {m:.3} inside the model"))
                .unwrap_or_default(),
            if d.target_0_9_met { "met" } else { "missed" }
        );
        let _ = write!(
            out,
            "<tr><td>(b') saving factor of DreamGym (0 online real steps)</td><td>{}{}</td></tr>",
            saving_text(&d.saving),
            d.saving_per_seed
                .map(|f| format!("; {}", per_seed_text(f)))
                .unwrap_or_default()
        );
        for p in &h.s2r {
            let ci = p.factor.map_or_else(
                || "per-seed interval: n/a (some seeds give bounds)".to_string(),
                per_seed_text,
            );
            let _ = write!(
                out,
                "<tr><td>(c) saving factor of DreamGym-S2R at {} online steps</td><td>{} at success {:.3}; {ci}; online steps only (the paper's counting): {}{}</td></tr>",
                p.budget,
                saving_text(&p.mean_curves),
                p.mean_curves.map_or(0.0, |m| m.target_success),
                saving_text(&p.online_only),
                p.online_only_per_seed
                    .map(|f| format!(", {}", per_seed_text(f)))
                    .unwrap_or_default()
            );
        }
        let rc = &h.reach_converged;
        let _ = write!(
            out,
            "<tr><td>(c') to real_only's converged level ({:.3}, its interval's low end)</td><td>{}; target 20x: {}</td></tr></table><p>{}</p>",
            rc.target_success,
            match rc.s2r_budget {
                Some(b) => format!(
                    "S2R reaches it at {b} online steps: {}; online steps only: {}",
                    saving_text(&rc.saving),
                    saving_text(&rc.online_only)
                ),
                None => "no S2R budget reaches it".into(),
            },
            if rc.target_20x_met { "met" } else { "missed" },
            esc(&h.method)
        );
    }
    out.push_str(&figure(&chart(s)));
    out.push_str("<h2>Every point</h2><table><tr><th>method</th><th>online budget</th><th>real interactions</th><th>synthetic steps</th><th>success</th><th>95% CI</th><th>per seed</th></tr>");
    for (name, curve) in &s.curves {
        curve_rows(&mut out, name, curve);
    }
    out.push_str("</table>");
    notes_and_settings(&mut out, &s.notes, &s.config);
    out
}

/// Per-seed saving factors' geometric mean and interval, as written in the headline.
fn per_seed_text(f: Interval) -> String {
    format!(
        "per seed: geometric mean {:.3} [{:.3}, {:.3}]",
        f.mean, f.ci_low, f.ci_high
    )
}

/// Writes `summary.json`, `report.html` and `efficiency.svg` into `dir` (each replaced whole).
pub fn write(dir: &Path, s: &EfficiencySummary) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    replace_file(&dir.join("summary.json"), &serde_json::to_string_pretty(s)?)?;
    replace_file(&dir.join("report.html"), &html(s))?;
    replace_file(&dir.join("efficiency.svg"), &charts::svg(&chart(s))?)?;
    Ok(())
}
