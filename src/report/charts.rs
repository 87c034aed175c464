//! SVG line charts for the reports, drawn with `plotters`: series of points with an optional
//! shaded interval, a linear or log x axis, ticks and a legend beside the plot (never over the
//! curves). The SVG's text is drawn by the browser; no font file is read.

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One curve.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points, ascending in x.
    pub points: Vec<(f64, f64)>,
    /// A shaded band (x, low, high), e.g. a confidence interval, drawn under the line.
    pub band: Vec<(f64, f64, f64)>,
    /// Vertical interval bars (x, low, high) at single points.
    pub bars: Vec<(f64, f64, f64)>,
    /// Draw a dashed horizontal line at the y of its single point across the whole plot
    /// (a reference level such as a random policy's success).
    pub reference_line: bool,
}

/// A chart: axes and series.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Caption above the plot.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// A log10 x axis (all x must be > 0).
    pub log_x: bool,
    /// The y range.
    pub y_range: (f64, f64),
    /// The curves.
    pub series: Vec<Series>,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
    RGBColor(23, 190, 207),
];

/// The colour of the `i`th series.
fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// A tick label: 1 234 567 -> "1.23M", 20 000 -> "20k", 0.5 -> "0.5".
pub fn short_number(x: f64) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    let a = x.abs();
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", x / 1e6)))
    } else if a >= 1e3 {
        format!("{}k", trim(format!("{:.1}", x / 1e3)))
    } else {
        trim(format!("{x:.3}"))
    }
}

const WIDTH: u32 = 860;
const HEIGHT: u32 = 380;
const LEGEND_WIDTH: u32 = 230;

/// Renders `chart` as an `<svg>` element.
pub fn svg(chart: &Chart) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow!("drawing a chart: {e}"))?;
        let (plot, legend) = root.split_horizontally(WIDTH - LEGEND_WIDTH);
        let (x0, x1) = x_extent(chart);
        // the same frame for both axis kinds; only the x coordinate's type differs
        let mut frame = ChartBuilder::on(&plot);
        frame
            .caption(&chart.title, ("sans-serif", 15))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(52);
        let y = chart.y_range.0..chart.y_range.1;
        let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing a chart: {e}");
        if chart.log_x {
            let x = (x0..x1).log_scale().with_key_points(log_ticks(x0, x1));
            let mut c = frame.build_cartesian_2d(x, y).map_err(err)?;
            draw(&mut c, chart, (x0, x1))?;
        } else {
            let mut c = frame.build_cartesian_2d(x0..x1, y).map_err(err)?;
            draw(&mut c, chart, (x0, x1))?;
        }
        draw_legend(&legend, chart)?;
        root.present()
            .map_err(|e| anyhow!("drawing a chart: {e}"))?;
    }
    Ok(out)
}

/// Ticks of a log axis over [lo, hi]: 1, 2 and 5 times each power of ten inside it.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = vec![];
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return ticks;
    }
    let mut decade = 10f64.powi(lo.log10().floor() as i32);
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = m * decade;
            if t >= lo && t <= hi {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// The x range: the points' with a margin (a log axis gets a factor each side).
fn x_extent(chart: &Chart) -> (f64, f64) {
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|x| x.is_finite() && (!chart.log_x || *x > 0.0));
    let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    if !lo.is_finite() {
        return if chart.log_x { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if chart.log_x {
        (lo / 1.6, hi * 1.6)
    } else if hi > lo {
        (lo.min(0.0), hi + (hi - lo) * 0.02)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

fn draw<X>(
    c: &mut ChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    chart: &Chart,
    (x0, x1): (f64, f64),
) -> Result<()>
where
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing a chart: {e}");
    c.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| short_number(*y))
        .light_line_style(RGBColor(235, 235, 235))
        .y_max_light_lines(1)
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    for (i, s) in chart.series.iter().enumerate() {
        let col = colour(i);
        if s.band.len() > 1 {
            let mut outline: Vec<(f64, f64)> = s.band.iter().map(|b| (b.0, b.2)).collect();
            outline.extend(s.band.iter().rev().map(|b| (b.0, b.1)));
            c.draw_series(std::iter::once(Polygon::new(outline, col.mix(0.18))))
                .map_err(err)?;
        }
        for &(x, lo, hi) in &s.bars {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(x, lo), (x, hi)],
                col.stroke_width(2),
            )))
            .map_err(err)?;
        }
        if s.reference_line
            && let Some(&(_, y)) = s.points.first()
        {
            c.draw_series(DashedLineSeries::new(
                vec![(x0, y), (x1, y)],
                6,
                4,
                col.stroke_width(1),
            ))
            .map_err(err)?;
            continue;
        }
        if s.points.len() > 1 {
            c.draw_series(LineSeries::new(s.points.clone(), col.stroke_width(2)))
                .map_err(err)?;
        }
        c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, col.filled())))
            .map_err(err)?;
    }
    Ok(())
}

/// The legend, in its own area right of the plot.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, chart: &Chart) -> Result<()> {
    let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing a chart: {e}");
    for (i, s) in chart.series.iter().enumerate() {
        let y = 40 + 20 * i as i32;
        let col = colour(i);
        area.draw(&PathElement::new(
            vec![(4, y + 6), (26, y + 6)],
            col.stroke_width(if s.reference_line { 1 } else { 3 }),
        ))
        .map_err(err)?;
        area.draw(&Text::new(s.name.clone(), (32, y), ("sans-serif", 12)))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_one_two_five() {
        assert_eq!(log_ticks(3_000.0, 60_000.0), [5e3, 1e4, 2e4, 5e4]);
        assert_eq!(log_ticks(1.0, 10.0), [1.0, 2.0, 5.0, 10.0]);
        assert!(log_ticks(0.0, 10.0).is_empty());
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(short_number(20_000.0), "20k");
        assert_eq!(short_number(1_250_000.0), "1.25M");
        assert_eq!(short_number(2_500.0), "2.5k");
        assert_eq!(short_number(0.5), "0.5");
        assert_eq!(short_number(0.123_456), "0.123");
        assert_eq!(short_number(0.0), "0");
    }

    #[test]
    fn a_log_chart_has_its_series_ticks_and_legend() {
        let chart = Chart {
            title: "success & real interactions".into(),
            x_label: "real interactions".into(),
            y_label: "success".into(),
            log_x: true,
            y_range: (0.0, 1.0),
            series: vec![
                Series {
                    name: "real_only".into(),
                    points: vec![(5e3, 0.2), (2e4, 0.5), (8e4, 0.9)],
                    band: vec![(5e3, 0.1, 0.3), (2e4, 0.4, 0.6), (8e4, 0.85, 0.95)],
                    ..Default::default()
                },
                Series {
                    name: "random".into(),
                    points: vec![(5e3, 0.01)],
                    reference_line: true,
                    ..Default::default()
                },
            ],
        };
        let s = svg(&chart).unwrap();
        assert!(s.starts_with("<svg"), "{}", &s[..40]);
        assert!(s.contains("real_only") && s.contains("random"));
        // the title is escaped, the log axis has power-of-ten ticks
        assert!(s.contains("success &amp; real interactions"));
        let ticks: Vec<&str> = s
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .map(str::trim)
            .filter(|t| t.ends_with('k'))
            .collect();
        assert_eq!(ticks, ["5k", "10k", "20k", "50k", "100k"], "1-2-5 ticks");
        assert!(s.contains("<polygon"), "the shaded band");
    }
}
