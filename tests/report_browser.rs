//! The report as a reader sees it: a small `dreamgym run` writes `report.html`, and every chart
//! in it is opened in a real browser (headless Chromium, `scripts/setup-browser.sh` installs
//! Debian's) and screenshotted; a chart whose screenshot holds no coloured pixel — axes and text
//! only, nothing plotted — fails the test. A chart drawn with no series is the control: it must
//! count as empty.
//!
//! Without a browser the test says so and passes, unless `DREAMGYM_REQUIRE_BROWSER` is set (the
//! test script sets it once the browser is installed).

#[path = "support/cli.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::{bin, run};

/// The headless browser, if there is one.
fn browser() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// `page` (a file) screenshotted by `browser` at `width` x `height`, as RGBA rows.
fn screenshot(browser: &Path, page: &Path, width: u32, height: u32) -> (Vec<u8>, u32, u32) {
    let png_path = page.with_extension("png");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        png_path.exists(),
        "{} wrote no screenshot of {}: {}",
        browser.display(),
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgba = buf[..info.buffer_size()]
        .chunks(channels)
        .flat_map(|p| match channels {
            4 => [p[0], p[1], p[2], p[3]],
            3 => [p[0], p[1], p[2], 255],
            _ => [p[0], p[0], p[0], 255],
        })
        .collect();
    (rgba, info.width, info.height)
}

/// Pixels of a saturated colour (a curve, a dot, a band): not white, grey or black, as the
/// axes, grid and text of a chart are.
fn coloured_pixels(rgba: &[u8]) -> usize {
    rgba.chunks(4)
        .filter(|p| {
            let (max, min) = (p[0].max(p[1]).max(p[2]), p[0].min(p[1]).min(p[2]));
            max - min > 60
        })
        .count()
}

/// Each `<svg>...</svg>` of `html`.
fn svgs(html: &str) -> Vec<&str> {
    html.match_indices("<svg")
        .map(|(start, _)| {
            let end = html[start..].find("</svg>").unwrap() + start + "</svg>".len();
            &html[start..end]
        })
        .collect()
}

/// Writes `svg` into a page of its own in `dir` and returns the coloured pixels of its
/// screenshot.
fn coloured_in(browser: &Path, dir: &Path, name: &str, svg: &str) -> usize {
    let page = dir.join(format!("{name}.html"));
    std::fs::write(
        &page,
        format!("<!doctype html><html><body style=\"margin:0\">{svg}</body></html>"),
    )
    .unwrap();
    let (rgba, w, h) = screenshot(browser, &page, 900, 900);
    assert!(w > 0 && h > 0);
    coloured_pixels(&rgba)
}

#[test]
fn every_chart_of_a_run_report_shows_something_in_a_real_browser() {
    let Some(browser) = browser() else {
        assert!(
            std::env::var_os("DREAMGYM_REQUIRE_BROWSER").is_none(),
            "DREAMGYM_REQUIRE_BROWSER is set but no chromium is installed"
        );
        eprintln!("no headless browser (chromium): the report's charts are not checked");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.ron");
    std::fs::write(
        &cfg,
        "(difficulty: Some(1), seeds: [1, 2], offline_episodes: 30, iterations: 4, s2r_share: 0.5, eval_episodes: 10, fidelity_episodes: 0, ablations: false)",
    )
    .unwrap();
    let out = dir.path().join("out");
    let (ok, _, err) = run(bin()
        .args(["run", "scenarios/keys_doors.ron", "--backend", "cpu"])
        .arg("--config")
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .arg("--no-buffer"));
    assert!(ok, "{err}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let charts = svgs(&html);
    // held-out success, the model→real gap, training in the real env and in the model, the
    // curriculum
    assert_eq!(charts.len(), 5, "charts in the report");
    for (i, svg) in charts.iter().enumerate() {
        let coloured = coloured_in(&browser, dir.path(), &format!("chart{i}"), svg);
        assert!(
            coloured > 100,
            "chart {i} shows nothing plotted in {} ({coloured} coloured pixels): {}",
            browser.display(),
            &svg[..svg.len().min(300)]
        );
    }
    // the whole page opens and shows its charts too
    let (rgba, _, _) = screenshot(&browser, &out.join("report.html"), 1000, 2400);
    assert!(coloured_pixels(&rgba) > 500, "the page shows no chart");
    // the control: a chart with nothing plotted counts as empty
    let empty = dreamgym::report::charts::svg(&dreamgym::report::charts::Chart {
        title: "nothing".into(),
        x_label: "x".into(),
        y_label: "y".into(),
        log_x: false,
        y_range: (0.0, 1.0),
        series: vec![],
    })
    .unwrap();
    assert_eq!(coloured_in(&browser, dir.path(), "empty", &empty), 0);
}
