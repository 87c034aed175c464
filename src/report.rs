//! Writing a run's `summary.json` and a self-contained `report.html` (inline SVG charts, no
//! scripts, no network).

use crate::files::replace_file;
use crate::pipeline::RunSummary;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// A line chart: series of (x, y) points, y in [0, y_max].
fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    y_max: f64,
) -> String {
    let (w, h, pad) = (640.0, 300.0, 48.0);
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|q| q.0))
        .fold(1.0f64, f64::max);
    let sx = |x: f64| pad + x / x_max * (w - 2.0 * pad);
    let sy = |y: f64| h - pad - y / y_max * (h - 2.0 * pad);
    let mut svg = format!(
        "<figure><figcaption>{}</figcaption><svg width=\"{w}\" height=\"{h}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(title)
    );
    let _ = write!(
        svg,
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\"/><line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"#444\"/>",
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{} (0 to {x_max:.0})</text><text x=\"12\" y=\"{}\" font-size=\"12\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">{} (0 to {y_max})</text>",
        w / 2.0,
        h - 12.0,
        esc(x_label),
        h / 2.0,
        h / 2.0,
        esc(y_label)
    );
    for (i, (name, points)) in series.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        if pts.len() > 1 {
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
                pts.join(" ")
            );
        }
        for (x, y) in points {
            let _ = write!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                sx(*x),
                sy(*y)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{c}\">{}</text>",
            w - pad - 150.0,
            pad + 14.0 * i as f64,
            esc(name)
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn model_success(m: &crate::pipeline::MethodSummary) -> String {
    let xs: Vec<f32> = m.seeds.iter().filter_map(|r| r.model_success).collect();
    if xs.is_empty() {
        "-".into()
    } else {
        format!("{:.3}", xs.iter().sum::<f32>() / xs.len() as f32)
    }
}

/// Renders the HTML report.
pub fn html(s: &RunSummary) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>dreamgym report</title><style>body{font-family:sans-serif;max-width:960px;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}</style></head><body>",
    );
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
    out.push_str("<h2>Held-out success</h2><table><tr><th>method</th><th>success</th><th>95% CI</th><th>online real steps</th><th>offline real steps</th><th>synthetic steps</th><th>training success in the model</th></tr>");
    for (name, m) in &s.methods {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{:.3}</td><td>[{:.3}, {:.3}]</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            m.success,
            m.ci_low,
            m.ci_high,
            m.real_steps,
            m.offline_steps,
            m.synthetic_steps,
            model_success(m)
        );
    }
    out.push_str("</table>");
    let mut series = vec![];
    for name in ["real_only", "dreamgym", "dreamgym_s2r"] {
        if let Some(m) = s.methods.get(name) {
            for r in &m.seeds {
                series.push((
                    format!("{name} (seed {})", r.seed),
                    r.curve
                        .iter()
                        .map(|(x, y)| (*x as f64, *y as f64))
                        .collect(),
                ));
            }
        }
    }
    out.push_str(&chart(
        "Learning curves: training success against online real interactions (dreamgym: held-out success with none)",
        "real interactions",
        "success",
        &series,
        1.0,
    ));
    let max_d = s
        .curriculum
        .iter()
        .map(|p| p.max_difficulty)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    out.push_str(&chart(
        "Curriculum: difficulty over training iterations (first seed)",
        "iteration",
        "difficulty",
        &[
            (
                "batch mean difficulty".into(),
                s.curriculum
                    .iter()
                    .map(|p| (p.round as f64, p.batch_difficulty as f64))
                    .collect(),
            ),
            (
                "highest in pool".into(),
                s.curriculum
                    .iter()
                    .map(|p| (p.round as f64, p.max_difficulty as f64))
                    .collect(),
            ),
        ],
        max_d,
    ));
    let _ = write!(
        out,
        "<p>Generated variants rejected by the feasibility check: {}.</p>",
        s.curriculum_rejected
    );
    out.push_str("<h2>Experience model fidelity</h2><table>");
    for key in [
        "next_state_exact",
        "next_state_f1",
        "reward_accuracy",
        "false_success_rate",
        "done_accuracy",
        "eps_r",
        "eps_p",
        "bound_penalty",
    ] {
        if let Some(v) = s.fidelity.get(key) {
            let _ = write!(out, "<tr><td>{key}</td><td>{v}</td></tr>");
        }
    }
    out.push_str("</table><h2>Notes</h2><ul>");
    for n in &s.notes {
        let _ = write!(out, "<li>{}</li>", esc(n));
    }
    let _ = write!(
        out,
        "</ul><h2>Settings</h2><pre>{}</pre></body></html>",
        esc(&serde_json::to_string_pretty(&s.config).unwrap_or_default())
    );
    out
}

/// Writes `summary.json` and `report.html` into `dir`, each to a temporary file renamed over the
/// old one, so that a kill while writing leaves the previous version whole.
pub fn write(dir: &Path, s: &RunSummary) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    replace_file(&dir.join("summary.json"), &serde_json::to_string_pretty(s)?)?;
    replace_file(&dir.join("report.html"), &html(s))?;
    Ok(())
}
