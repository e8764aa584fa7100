//! `bench compare A.json B.json …`: records side by side (docs/benchmarks.md, "Comparing").
//! Workloads are matched by name; the first record is the baseline of the speed-ups.

use super::record::{Record, Workload};
use crate::error::{Error, Result};
use std::fmt::Write;
use std::path::Path;

/// Workload names in first-seen order over all records.
fn names(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for r in records {
        for w in &r.workloads {
            if !out.contains(&w.name) {
                out.push(w.name.clone());
            }
        }
    }
    out
}

fn find<'a>(r: &'a Record, name: &str) -> Option<&'a Workload> {
    r.workloads.iter().find(|w| w.name == name)
}

/// One column heading per record: adapter, backend, tool revision and date; numbered when
/// two would read the same.
pub fn labels(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let rev = r.tool.git_revision.as_deref().unwrap_or(&r.tool.version);
            format!(
                "[{}] {} {} {}",
                i + 1,
                r.label(),
                rev,
                &r.created[..10.min(r.created.len())]
            )
        })
        .collect()
}

/// The Markdown comparison: per workload, each record's median time and rate, the speed-up
/// over the first record, and ✗ where the record's correctness check failed.
pub fn markdown(records: &[Record]) -> String {
    let mut s = String::new();
    let labels = labels(records);
    for (l, r) in labels.iter().zip(records) {
        let peaks = match &r.peaks {
            Some(p) => format!("peaks {p}"),
            None => "no peaks measured".into(),
        };
        let _ = writeln!(
            s,
            "- {l}: {} / {}, {}, {}",
            r.adapter.driver,
            r.adapter.driver_info,
            r.system.os_version.as_deref().unwrap_or(&r.system.os),
            peaks
        );
    }
    let _ = writeln!(s);
    let _ = write!(s, "| workload |");
    for i in 0..records.len() {
        let _ = write!(s, " [{}] ms | [{}] rate |", i + 1, i + 1);
        if i > 0 {
            let _ = write!(s, " [{}] vs [1] |", i + 1);
        }
    }
    let _ = writeln!(s);
    let _ = write!(s, "|---|");
    for i in 0..records.len() {
        let _ = write!(s, "---:|---:|{}", if i > 0 { "---:|" } else { "" });
    }
    let _ = writeln!(s);
    for name in names(records) {
        let base = find(&records[0], &name);
        let _ = write!(s, "| {name} |");
        for (i, r) in records.iter().enumerate() {
            match find(r, &name) {
                Some(w) => {
                    let (v, unit) = w.rate().unwrap_or((0.0, "GB/s"));
                    let bad = if w.check.correct { "" } else { " ✗" };
                    let _ = write!(s, " {:.3}{bad} | {v:.1} {unit} |", w.stats.median_ms);
                    if i > 0 {
                        match base {
                            Some(b) => {
                                let _ =
                                    write!(s, " {:.2}x |", b.stats.median_ms / w.stats.median_ms);
                            }
                            None => s.push_str(" – |"),
                        }
                    }
                }
                None => s.push_str(if i > 0 {
                    " – | – | – |"
                } else {
                    " – | – |"
                }),
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\nms: median time per repetition; rate: GFLOP/s, GB/s or items per second; ✗: the workload's result failed its correctness check."
    );
    s
}

/// Writes `compare.md`, `speedup.png` (each workload's speed over the first record) and,
/// where records have peaks, `peak.png` (each kernel's GFLOP/s as % of its adapter's FMA
/// peak) into `out`.
pub fn write(records: &[Record], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    crate::checkpoint::write_atomic(&out.join("compare.md"), markdown(records).as_bytes())?;
    let labels = labels(records);
    let mut speedup = vec![];
    let mut peak = vec![];
    for name in names(records) {
        let base = find(&records[0], &name);
        for (i, r) in records.iter().enumerate() {
            let Some(w) = find(r, &name) else { continue };
            if let Some(b) = base {
                speedup.push((name.clone(), b.stats.median_ms / w.stats.median_ms, i));
            }
            if let Some(p) = w.pct_peak_flops {
                peak.push((name.clone(), p, i));
            }
        }
    }
    crate::plot::grouped_bar_chart(
        &out.join("speedup.png"),
        "speed relative to [1] (median time of [1] / median time)",
        &labels,
        &speedup,
    )?;
    if !peak.is_empty() {
        crate::plot::grouped_bar_chart(
            &out.join("peak.png"),
            "GFLOP/s as % of the adapter's measured FMA peak",
            &labels,
            &peak,
        )?;
    }
    Ok(())
}
