//! Small PNG charts (bar charts with labels and error bars) drawn with the `image` crate and an
//! embedded font, so reports need no system fonts or plotting stack.

use crate::error::{Error, Result};
use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};
use std::path::Path;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
const BG: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([30, 30, 30]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
/// Bar colours, one per series (cycled).
const SERIES: [Rgb<u8>; 6] = [
    Rgb([66, 120, 190]),
    Rgb([221, 132, 82]),
    Rgb([85, 168, 104]),
    Rgb([196, 78, 82]),
    Rgb([129, 114, 179]),
    Rgb([147, 120, 96]),
];

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(FONT).expect("embedded font parses")
}

/// Draws `text` with its left baseline at (x, y), `px` pixels high.
fn text(img: &mut RgbImage, x: f32, y: f32, px: f32, s: &str, color: Rgb<u8>) {
    let f = font();
    let sf = f.as_scaled(PxScale::from(px));
    let mut pen = x;
    for ch in s.chars() {
        let gid = f.glyph_id(ch);
        let glyph = gid.with_scale_and_position(PxScale::from(px), ab_glyph::point(pen, y));
        pen += sf.h_advance(gid);
        if let Some(outline) = f.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, c| {
                let (px_, py_) = (b.min.x as i64 + gx as i64, b.min.y as i64 + gy as i64);
                if px_ >= 0 && py_ >= 0 && (px_ as u32) < img.width() && (py_ as u32) < img.height()
                {
                    let p = img.get_pixel_mut(px_ as u32, py_ as u32);
                    for k in 0..3 {
                        p.0[k] = (p.0[k] as f32 * (1.0 - c) + color.0[k] as f32 * c) as u8;
                    }
                }
            });
        }
    }
}

fn text_width(px: f32, s: &str) -> f32 {
    let f = font();
    let sf = f.as_scaled(PxScale::from(px));
    s.chars().map(|c| sf.h_advance(f.glyph_id(c))).sum()
}

fn rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, color: Rgb<u8>) {
    for y in y0.max(0)..y1.min(img.height() as i64) {
        for x in x0.max(0)..x1.min(img.width() as i64) {
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

/// Horizontal bar chart: one bar per `(label, value, error)`, values from 0, error bars ±error.
pub fn bar_chart(path: &Path, title: &str, bars: &[(String, f64, f64)]) -> Result<()> {
    let bars: Vec<(String, f64, f64, usize)> = bars
        .iter()
        .map(|(l, v, e)| (l.clone(), *v, *e, 0))
        .collect();
    draw(path, title, &bars, &[])
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
    let bars: Vec<(String, f64, f64, usize)> = bars
        .iter()
        .enumerate()
        .map(|(i, (l, v, s))| {
            let repeated = i > 0 && bars[i - 1].0 == *l;
            let label = if repeated { String::new() } else { l.clone() };
            (label, *v, 0.0, *s)
        })
        .collect();
    draw(path, title, &bars, series)
}

fn draw(
    path: &Path,
    title: &str,
    bars: &[(String, f64, f64, usize)],
    legend: &[String],
) -> Result<()> {
    let (row, px) = (34i64, 15.0f32);
    let label_w = bars
        .iter()
        .map(|b| text_width(px, &b.0))
        .fold(0.0f32, f32::max) as i64
        + 20;
    let (w, plot_w) = (label_w + 560 + 90, 560i64);
    let legend_h = 22 * legend.len() as i64;
    let h = 60 + row * bars.len() as i64 + 40 + legend_h;
    let mut img = RgbImage::from_pixel(w as u32, h as u32, BG);
    text(&mut img, 10.0, 28.0, 17.0, title, INK);
    for (i, name) in legend.iter().enumerate() {
        let y = h - legend_h + 22 * i as i64;
        rect(&mut img, 10, y + 4, 26, y + 18, SERIES[i % SERIES.len()]);
        text(&mut img, 34.0, (y + 16) as f32, 13.0, name, INK);
    }
    let h = h - legend_h;
    let max = bars
        .iter()
        .map(|b| b.1 + b.2)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    // Ticks every 1, 2 or 5 × 10^k, about five of them.
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let ticks = (max / step).ceil() as usize;
    let top = ticks as f64 * step;
    let x_of = |v: f64| label_w + (v / top * plot_w as f64) as i64;
    for i in 0..=ticks {
        let v = step * i as f64;
        let x = x_of(v);
        rect(&mut img, x, 45, x + 1, h - 35, GRID);
        let s = format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string();
        text(
            &mut img,
            x as f32 - text_width(12.0, &s) / 2.0,
            (h - 15) as f32,
            12.0,
            &s,
            INK,
        );
    }
    for (i, (label, v, e, series)) in bars.iter().enumerate() {
        let y = 55 + row * i as i64;
        text(
            &mut img,
            (label_w - 10) as f32 - text_width(px, label),
            (y + 19) as f32,
            px,
            label,
            INK,
        );
        let color = SERIES[series % SERIES.len()];
        rect(&mut img, label_w, y + 4, x_of(*v), y + row - 8, color);
        if *e > 0.0 {
            let (a, b) = (x_of(v - e), x_of(v + e));
            rect(&mut img, a, y + row / 2 - 2, b, y + row / 2, INK);
            rect(&mut img, a, y + 8, a + 2, y + row - 12, INK);
            rect(&mut img, b - 2, y + 8, b, y + row - 12, INK);
        }
        let s = if *e > 0.0 {
            format!("{v:.2} ± {e:.2}")
        } else {
            format!("{v:.2}")
        };
        text(
            &mut img,
            (x_of(v + e) + 6) as f32,
            (y + 19) as f32,
            13.0,
            &s,
            INK,
        );
    }
    let mut buf = std::io::Cursor::new(vec![]);
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| Error::Invalid(format!("encoding {}: {e}", path.display())))?;
    crate::checkpoint::write_atomic(path, buf.get_ref())
}
