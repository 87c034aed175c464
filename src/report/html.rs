//! The pieces both HTML reports (`dreamgym run`, `dreamgym efficiency`) are made of: escaping,
//! the page head, charts as figures, and the closing notes and settings.

use crate::report::charts::{self, Chart};
use std::fmt::Write as _;

/// `s` safe inside HTML text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The start of a self-contained page (no scripts, no network) titled `title`.
pub fn page_start(title: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child,td:first-child{{text-align:left}}</style></head><body>",
        esc(title)
    )
}

/// A chart as inline SVG in a `<figure>`, or a line saying why it could not be drawn.
pub fn figure(chart: &Chart) -> String {
    match charts::svg(chart) {
        Ok(svg) => format!("<figure>{svg}</figure>"),
        Err(e) => format!("<p>(chart not drawn: {})</p>", esc(&e.to_string())),
    }
}

/// `dots` as an SVG figure, or a line saying why it could not be drawn.
pub fn dots_figure(dots: &crate::report::dots::Dots) -> String {
    match crate::report::dots::svg(dots) {
        Ok(svg) => format!("<figure>{svg}</figure>"),
        Err(e) => format!("<p>(chart not drawn: {})</p>", esc(&e.to_string())),
    }
}

/// The end of a page: the notes as a list, the settings as JSON, and the closing tags.
pub fn notes_and_settings(out: &mut String, notes: &[String], settings: &impl serde::Serialize) {
    out.push_str("<h2>Notes</h2><ul>");
    for n in notes {
        let _ = write!(out, "<li>{}</li>", esc(n));
    }
    let _ = write!(
        out,
        "</ul><h2>Settings</h2><pre>{}</pre></body></html>",
        esc(&serde_json::to_string_pretty(settings).unwrap_or_default())
    );
}
