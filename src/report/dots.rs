//! SVG dot plots for the reports, drawn with `plotters`: one row per item (a method), a dot at
//! its mean with a horizontal bar for its 95% interval, the figures written in a column to the
//! right (three places), rows top to bottom in the order given, and dashed vertical reference lines (e.g.
//! offline_bc's and random's success) labelled at the top.

use crate::report::charts::short_number;
use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One row: a name, its mean and interval.
#[derive(Debug, Clone, PartialEq)]
pub struct DotRow {
    /// Label on the left.
    pub name: String,
    /// The dot.
    pub mean: f64,
    /// The interval's low end.
    pub low: f64,
    /// Its high end.
    pub high: f64,
}

impl DotRow {
    /// The row `name` at a `(mean, low, high)` interval.
    pub fn new(name: &str, (mean, low, high): (f32, f32, f32)) -> Self {
        Self {
            name: name.to_string(),
            mean: f64::from(mean),
            low: f64::from(low),
            high: f64::from(high),
        }
    }
}

/// Orders `rows` best first: the highest mean on top, ties by name.
pub fn best_first(rows: &mut [DotRow]) {
    rows.sort_by(|a, b| b.mean.total_cmp(&a.mean).then_with(|| a.name.cmp(&b.name)));
}

/// A dot plot.
#[derive(Debug, Clone)]
pub struct Dots {
    /// Caption above the plot.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// The x range.
    pub x_range: (f64, f64),
    /// Rows, drawn top to bottom.
    pub rows: Vec<DotRow>,
    /// Dashed vertical lines: (label, x).
    pub references: Vec<(String, f64)>,
}

const WIDTH: u32 = 860;
/// The column right of the plot where each row's figures are written.
const VALUES_WIDTH: u32 = 170;
const ROW_HEIGHT: u32 = 30;
const DOT: RGBColor = RGBColor(31, 119, 180);
const REFERENCE: RGBColor = RGBColor(214, 39, 40);

/// Renders `dots` as an `<svg>` element.
pub fn svg(dots: &Dots) -> Result<String> {
    let n = dots.rows.len().max(1);
    let height = 90 + ROW_HEIGHT * n as u32;
    // room for the longest name at about 7 px a character
    let names = dots.rows.iter().map(|r| r.name.len()).max().unwrap_or(8);
    let name_area = (names as u32 * 7 + 16).clamp(80, 300);
    let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing a dot plot: {e}");
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot, values) = root.split_horizontally(WIDTH - VALUES_WIDTH);
        let (x0, x1) = dots.x_range;
        // one segment per row; row i in segment n - 1 - i, so the first row is on top
        let mut c = ChartBuilder::on(&plot)
            .caption(&dots.title, ("sans-serif", 15))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(name_area)
            .build_cartesian_2d(x0..x1, (0..n).into_segmented())
            .map_err(err)?;
        let at = |i: usize| SegmentValue::CenterOf(n - 1 - i);
        let name_of = |y: &SegmentValue<usize>| match y {
            SegmentValue::CenterOf(k) if *k < n => dots
                .rows
                .get(n - 1 - k)
                .map_or_else(String::new, |r| r.name.clone()),
            _ => String::new(),
        };
        c.configure_mesh()
            .x_desc(dots.x_label.as_str())
            .x_label_formatter(&|x| short_number(*x))
            .y_label_formatter(&name_of)
            .y_labels(n)
            .disable_y_mesh()
            .x_max_light_lines(1)
            .light_line_style(RGBColor(235, 235, 235))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (label, x) in &dots.references {
            c.draw_series(DashedLineSeries::new(
                vec![(*x, SegmentValue::Exact(0)), (*x, SegmentValue::Last)],
                6,
                4,
                REFERENCE.stroke_width(1),
            ))
            .map_err(err)?;
            c.draw_series(std::iter::once(Text::new(
                format!("{label} {x:.3}"),
                (*x, SegmentValue::Last),
                ("sans-serif", 11).into_font().color(&REFERENCE),
            )))
            .map_err(err)?;
        }
        let value_style = ("sans-serif", 12)
            .into_font()
            .into_text_style(&values)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, r) in dots.rows.iter().enumerate() {
            c.draw_series(std::iter::once(PathElement::new(
                vec![(r.low, at(i)), (r.high, at(i))],
                DOT.stroke_width(3),
            )))
            .map_err(err)?;
            c.draw_series(std::iter::once(Circle::new(
                (r.mean, at(i)),
                5,
                DOT.filled(),
            )))
            .map_err(err)?;
            // the figures in a column right of the plot, level with their row
            let (_, py) = c.backend_coord(&(r.mean, at(i)));
            values
                .draw(&Text::new(
                    format!("{:.3} [{:.3}, {:.3}]", r.mean, r.low, r.high),
                    (6, py),
                    value_style.clone(),
                ))
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{DotRow, Dots, svg};

    #[test]
    fn a_dot_plot_names_every_row_and_draws_its_interval_and_references() {
        let row = |name: &str, mean: f64| DotRow {
            name: name.into(),
            mean,
            low: mean - 0.05,
            high: mean + 0.05,
        };
        let dots = Dots {
            title: "held-out success".into(),
            x_label: "success".into(),
            x_range: (0.0, 1.0),
            rows: vec![row("real_only", 0.9), row("dreamgym", 0.56)],
            references: vec![("offline_bc".into(), 0.32)],
        };
        let s = svg(&dots).unwrap();
        assert!(s.starts_with("<svg"));
        for text in [
            "real_only",
            "dreamgym",
            "0.900 [0.850, 0.950]",
            "offline_bc 0.320",
        ] {
            assert!(s.contains(text), "{text} missing");
        }
        // one filled dot per row
        assert_eq!(s.matches("<circle").count(), 2);
    }
}
