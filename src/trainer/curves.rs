//! A run's `curves.png`, redrawn with every checkpoint from the metrics history: losses, scores
//! (accuracy in %, other dev scores as they are) and the learning rate, by epoch. Works on any
//! task's metrics through their JSON field names, so images and text share it.

use crate::error::Result;
use crate::plot::{Line, Panel};
use serde::Serialize;

/// The curves of `history` (one metrics line per epoch) as PNG bytes, titled `title`.
pub fn draw<M: Serialize>(title: &str, history: &[M]) -> Result<Vec<u8>> {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = history
        .iter()
        .filter_map(|m| match serde_json::to_value(m) {
            Ok(serde_json::Value::Object(o)) => Some(o),
            _ => None,
        })
        .collect();
    // Every field of any line, sorted (each panel's lines in a stable order).
    let mut fields: Vec<&String> = rows.iter().flat_map(|r| r.keys()).collect();
    fields.sort();
    fields.dedup();
    let line = |field: &str, scale: f64| Line {
        name: field.replace('_', " "),
        points: rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                let epoch = r
                    .get("epoch")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(i as f64 + 1.0);
                Some((epoch, r.get(field)?.as_f64()? * scale))
            })
            .collect(),
    };
    let panel = |title: &str, y_label: &str, pick: &dyn Fn(&str) -> bool, scale: f64| Panel {
        title: title.into(),
        y_label: y_label.into(),
        lines: fields
            .iter()
            .filter(|f| pick(f))
            .map(|f| line(f, scale))
            .collect(),
    };
    let is_loss = |f: &str| f.ends_with("_loss");
    let is_acc = |f: &str| f.ends_with("_acc");
    let is_score = |f: &str| f.starts_with("dev_") && !is_loss(f) && !is_acc(f);
    let panels: Vec<Panel> = [
        panel("loss", "cross-entropy", &is_loss, 1.0),
        panel("accuracy", "%", &is_acc, 100.0),
        panel("dev scores", "score", &is_score, 1.0),
        panel("learning rate", "lr", &|f| f == "lr", 1.0),
    ]
    .into_iter()
    .filter(|p| !p.lines.is_empty())
    .collect();
    crate::plot::curves(title, "epoch", &panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct M {
        epoch: usize,
        train_loss: f64,
        test_loss: f64,
        train_acc: f64,
        lr: f32,
    }

    #[test]
    fn curves_of_a_history_are_a_png_of_one_panel_per_kind() {
        let history: Vec<M> = (1..=3)
            .map(|e| M {
                epoch: e,
                train_loss: 1.0 / e as f64,
                test_loss: 1.2 / e as f64,
                train_acc: 0.5 + 0.1 * e as f64,
                lr: 0.1 / e as f32,
            })
            .collect();
        let png = draw("run", &history).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        // Three panels (loss, accuracy, learning rate), each 420 px wide.
        assert_eq!((img.width(), img.height()), (40 + 3 * 420, 380));
        // Something other than the white background was drawn in every panel.
        for p in 0..3u32 {
            let inked = (0..380)
                .flat_map(|y| (0..420).map(move |x| (x, y)))
                .filter(|&(x, y)| img.get_pixel(20 + p * 420 + x, y).0 != [255, 255, 255])
                .count();
            assert!(inked > 2000, "panel {p}: {inked} pixels drawn");
        }
        // A single epoch, and an empty history, still draw.
        draw("run", &history[..1]).unwrap();
        draw("run", &Vec::<M>::new()).unwrap();
    }
}
