//! PNG charts drawn with `plotters` into a memory bitmap and encoded by the `image` crate,
//! with the font embedded in the binary, so reports need no system fonts:
//! - [`curves`]: a run's training curves (loss, score, learning rate per epoch);
//! - [`bar_chart`] / [`grouped_bar_chart`]: horizontal bars with labels (and error bars);
//! - [`scatter`]: labelled points with vertical error bars (accuracy vs deployed parameters).

use crate::error::{Error, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";
/// One colour per series (cycled).
const SERIES: [RGBColor; 6] = [
    RGBColor(66, 120, 190),
    RGBColor(221, 132, 82),
    RGBColor(85, 168, 104),
    RGBColor(196, 78, 82),
    RGBColor(129, 114, 179),
    RGBColor(147, 120, 96),
];

fn color(i: usize) -> RGBColor {
    SERIES[i % SERIES.len()]
}

fn draw_error(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("drawing a chart: {e}"))
}

/// Series names one per line, each after a square of its colour, from pixel column `x`.
fn legend_strip<S: AsRef<str>>(
    area: &DrawingArea<BitMapBackend, Shift>,
    x: i32,
    names: &[S],
) -> Result<()> {
    for (s, name) in names.iter().enumerate() {
        let y = 22 * s as i32 + 4;
        let swatch = Rectangle::new([(x, y), (x + 12, y + 12)], color(s).filled());
        let text = Text::new(name.as_ref(), (x + 20, y), (FAMILY, 13));
        area.draw(&swatch).map_err(draw_error)?;
        area.draw(&text).map_err(draw_error)?;
    }
    Ok(())
}

/// Draws on a `w`×`h` white canvas and returns the PNG bytes.
fn png(
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>,
) -> Result<Vec<u8>> {
    static FONT_REGISTERED: std::sync::Once = std::sync::Once::new();
    FONT_REGISTERED.call_once(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the embedded font parses"));
    });
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        draw(&root)?;
        root.present().map_err(draw_error)?;
    }
    let img = image::RgbImage::from_raw(w, h, rgb).expect("buffer holds w×h pixels");
    let mut buf = std::io::Cursor::new(vec![]);
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("encoding a PNG: {e}")))?;
    Ok(buf.into_inner())
}

fn save(path: &Path, bytes: Vec<u8>) -> Result<()> {
    crate::checkpoint::write_atomic(path, &bytes)
}

/// A (min, max) range padded by 5 % (a flat or empty one widened), for an axis.
fn padded(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    let span = (hi - lo).max(hi.abs() * 1e-3).max(1e-12);
    let lo = if from_zero && lo >= 0.0 {
        lo
    } else {
        lo - 0.05 * span
    };
    (lo, hi + 0.05 * span)
}

/// One line of a [`Panel`]: (x, y) points joined in order.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart of [`curves`]: its lines share the axes.
pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub lines: Vec<Line>,
}

/// Panels side by side over a shared x label (a run's loss, score and learning rate by epoch).
pub fn curves(title: &str, x_label: &str, panels: &[Panel]) -> Result<Vec<u8>> {
    let w = 40 + 420 * panels.len().max(1) as u32;
    png(w, 380, |root| {
        let root = root.titled(title, (FAMILY, 20)).map_err(draw_error)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            let points = || panel.lines.iter().flat_map(|l| l.points.iter());
            let (x0, x1) = padded(points().map(|p| p.0), false);
            let (y0, y1) = padded(points().map(|p| p.1), false);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FAMILY, 16))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(62)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(draw_error)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(&panel.y_label)
                .x_labels(6)
                .y_labels(6)
                .label_style((FAMILY, 12))
                .axis_desc_style((FAMILY, 13))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(draw_error)?;
            for (i, line) in panel.lines.iter().enumerate() {
                let c = color(i);
                chart
                    .draw_series(LineSeries::new(line.points.clone(), c.stroke_width(2)))
                    .map_err(draw_error)?
                    .label(&line.name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(line.points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(draw_error)?;
            }
            if panel.lines.len() > 1 {
                // The legend goes in the corner the curves end away from.
                let ends: Vec<f64> = panel
                    .lines
                    .iter()
                    .filter_map(|l| Some(l.points.last()?.1))
                    .collect();
                let high = ends.iter().sum::<f64>() / ends.len().max(1) as f64 > (y0 + y1) / 2.0;
                let corner = match high {
                    true => SeriesLabelPosition::LowerRight,
                    false => SeriesLabelPosition::UpperRight,
                };
                chart
                    .configure_series_labels()
                    .label_font((FAMILY, 12))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(200, 200, 200))
                    .position(corner)
                    .draw()
                    .map_err(draw_error)?;
            }
        }
        Ok(())
    })
}

/// One horizontal bar: its label (empty: none), value, ± error (0: none) and series.
struct Bar {
    label: String,
    value: f64,
    error: f64,
    series: usize,
}

/// Horizontal bar chart: one bar per `(label, value, error)`, values from 0, error bars ±error.
pub fn bar_chart(path: &Path, title: &str, bars: &[(String, f64, f64)]) -> Result<()> {
    let bars: Vec<Bar> = bars
        .iter()
        .map(|(label, value, error)| Bar {
            label: label.clone(),
            value: *value,
            error: *error,
            series: 0,
        })
        .collect();
    save(path, draw_bars(title, &bars, &[])?)
}

/// Horizontal bar chart of several series: one bar per `(label, value, series)`, coloured by
/// series and named in a legend (`series` names).
pub fn grouped_bar_chart(
    path: &Path,
    title: &str,
    series: &[String],
    bars: &[(String, f64, usize)],
) -> Result<()> {
    // A group's label is written once, beside its first bar.
    let bars: Vec<Bar> = bars
        .iter()
        .enumerate()
        .map(|(i, (label, value, s))| Bar {
            label: match i > 0 && bars[i - 1].0 == *label {
                true => String::new(),
                false => label.clone(),
            },
            value: *value,
            error: 0.0,
            series: *s,
        })
        .collect();
    save(path, draw_bars(title, &bars, series)?)
}

fn draw_bars(title: &str, bars: &[Bar], legend: &[String]) -> Result<Vec<u8>> {
    let n = bars.len() as i32;
    let longest = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let label_w = 20 + 8 * longest;
    let legend_h = 22 * legend.len() as u32;
    let h = 90 + 30 * n.max(1) as u32 + legend_h;
    let (_, top) = padded(bars.iter().map(|b| b.value + b.error), true);
    let top = top * 1.12; // room for the value printed after each bar
    png(label_w + 640, h, |root| {
        // The legend gets its own strip under the chart, so it never covers a bar.
        let (root, legend_area) = root.split_vertically(h - legend_h);
        legend_strip(&legend_area, label_w as i32, legend)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0f64..top, (0..(n - 1).max(0)).into_segmented())
            .map_err(draw_error)?;
        // Bar i sits in segment n − 1 − i, so the first bar is at the top.
        let row = |i: usize| n - 1 - i as i32;
        let labels: Vec<&str> = bars.iter().rev().map(|b| b.label.as_str()).collect();
        let label_of = |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => labels.get(*i as usize).map_or("", |s| s).to_string(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(bars.len().max(1))
            .y_label_formatter(&label_of)
            .x_labels(6)
            .label_style((FAMILY, 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_error)?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let (y0, y1) = (SegmentValue::Exact(row(i)), SegmentValue::Exact(row(i) + 1));
                let mut r = Rectangle::new([(0.0, y0), (b.value, y1)], color(b.series).filled());
                r.set_margin(5, 5, 0, 0);
                r
            }))
            .map_err(draw_error)?;
        let middle = |i: usize| SegmentValue::CenterOf(row(i));
        chart
            .draw_series(
                bars.iter()
                    .enumerate()
                    .filter(|(_, b)| b.error > 0.0)
                    .map(|(i, b)| {
                        ErrorBar::new_horizontal(
                            middle(i),
                            b.value - b.error,
                            b.value,
                            b.value + b.error,
                            BLACK.stroke_width(2),
                            10,
                        )
                    }),
            )
            .map_err(draw_error)?;
        let value_style =
            TextStyle::from((FAMILY, 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let text = match b.error > 0.0 {
                    true => format!("{:.2} ± {:.2}", b.value, b.error),
                    false => format!("{:.2}", b.value),
                };
                EmptyElement::at((b.value + b.error, middle(i)))
                    + Text::new(text, (6, 0), value_style.clone())
            }))
            .map_err(draw_error)?;
        Ok(())
    })
}

/// One point of a [`scatter`]: its series (colour and legend), label, x, y and ± y error.
pub struct Point {
    pub series: String,
    pub label: String,
    pub x: f64,
    pub y: f64,
    pub y_error: f64,
}

/// Labelled points with vertical error bars, coloured by series.
pub fn scatter(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[Point],
) -> Result<()> {
    let mut series: Vec<&str> = vec![];
    for p in points {
        if !series.contains(&p.series.as_str()) {
            series.push(&p.series);
        }
    }
    let (x0, x1) = padded(points.iter().map(|p| p.x), true);
    let (y0, y1) = padded(
        points
            .iter()
            .flat_map(|p| [p.y - p.y_error, p.y + p.y_error]),
        false,
    );
    // Room around the points for their labels and error bars.
    let (y0, y1) = (y0 - 0.1 * (y1 - y0), y1 + 0.1 * (y1 - y0));
    let legend_h = 22 * series.len() as u32;
    let h = 480 + legend_h;
    let bytes = png(760, h, |root| {
        let (root, legend_area) = root.split_vertically(h - legend_h);
        legend_strip(&legend_area, 80, &series)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 17))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1 * 1.15, y0..y1)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style((FAMILY, 12))
            .axis_desc_style((FAMILY, 13))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(draw_error)?;
        let label_style =
            TextStyle::from((FAMILY, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (s, name) in series.iter().enumerate() {
            let c = color(s);
            let mine = || points.iter().filter(|p| p.series == *name);
            chart
                .draw_series(mine().filter(|p| p.y_error > 0.0).map(|p| {
                    ErrorBar::new_vertical(
                        p.x,
                        p.y - p.y_error,
                        p.y,
                        p.y + p.y_error,
                        c.stroke_width(2),
                        8,
                    )
                }))
                .map_err(draw_error)?;
            chart
                .draw_series(mine().map(|p| {
                    EmptyElement::at((p.x, p.y))
                        + Circle::new((0, 0), 5, c.filled())
                        + Text::new(p.label.clone(), (9, 0), label_style.clone())
                }))
                .map_err(draw_error)?;
        }
        Ok(())
    })?;
    save(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inked(path: &Path) -> usize {
        let img = image::open(path).unwrap().to_rgb8();
        img.pixels().filter(|p| p.0 != [255, 255, 255]).count()
    }

    #[test]
    fn every_chart_kind_draws_a_png() {
        let dir = std::env::temp_dir().join(format!("padnet-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bars = [
            ("static".to_string(), 84.1, 0.7),
            ("PAD κ=0.3".to_string(), 83.5, 0.3),
        ];
        bar_chart(&dir.join("bars.png"), "accuracy", &bars).unwrap();
        let grouped = [("gemm".to_string(), 2.0, 0), ("gemm".to_string(), 1.0, 1)];
        let series = ["a".to_string(), "b".to_string()];
        grouped_bar_chart(&dir.join("grouped.png"), "speed-up", &series, &grouped).unwrap();
        let point = |series: &str, label: &str, x, y| Point {
            series: series.into(),
            label: label.into(),
            x,
            y,
            y_error: 0.4,
        };
        let points = [
            point("static", "static", 0.31, 84.1),
            point("PAD", "PAD κ=0.3", 0.59, 83.5),
            point("PAD", "PAD κ=0.5", 0.77, 83.4),
        ];
        scatter(&dir.join("scatter.png"), "accuracy", "M", "%", &points).unwrap();
        for f in ["bars.png", "grouped.png", "scatter.png"] {
            assert!(inked(&dir.join(f)) > 3000, "{f} is nearly blank");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
