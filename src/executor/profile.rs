//! Per-dispatch profiles for `PADNET_PROFILE=1` (training steps, optimizer steps, inference
//! passes): each dispatch timed alone, summed per op kind. `PADNET_PROFILE_CSV=FILE` also
//! writes every dispatch's median time.

use super::optim::Optimizer;
use super::{Executable, ParamStore};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// Whether `PADNET_PROFILE` asks for profiles.
pub fn wanted() -> bool {
    std::env::var_os("PADNET_PROFILE").is_some()
}

/// Prints the time of one optimizer step alone (for `PADNET_PROFILE=1`).
pub fn print_optimizer(opt: &Optimizer, store: &ParamStore, reps: usize) -> Result<()> {
    println!(
        "optimizer step ({:.1}M parameters): {:.2} ms",
        store.num_params() as f64 / 1e6,
        opt.profile(&store.gpu, reps)?
    );
    Ok(())
}

/// Prints the slowest dispatches of one run of `exe` (each timed alone, `reps` times), and
/// the time per op kind. For `PADNET_PROFILE=1`.
pub fn print(exe: &Executable, reps: usize) -> Result<()> {
    let rows = exe.profile(reps)?;
    let total: f64 = rows.iter().map(|r| r.1).sum();
    let mut by_kind: HashMap<String, f64> = HashMap::new();
    for (label, ms) in &rows {
        // "opname#node shader:entry" -> "opname shader:entry"
        let mut parts = label.split_whitespace();
        let op = parts.next().unwrap_or("").split('#').next().unwrap_or("");
        *by_kind
            .entry(format!("{op} {}", parts.next().unwrap_or("")))
            .or_default() += ms;
    }
    let mut kinds: Vec<_> = by_kind.into_iter().collect();
    kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "profile of one run ({total:.1} ms in {} dispatches), by kind:",
        rows.len()
    );
    for (kind, ms) in kinds.iter().take(16) {
        println!("  {kind:<44} {ms:9.2} ms  {:5.1}%", 100.0 * ms / total);
    }
    let mut slowest = rows.clone();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!("slowest dispatches:");
    if let Some(path) = std::env::var_os("PADNET_PROFILE_CSV") {
        let lines: Vec<String> = rows.iter().map(|(l, ms)| format!("{l},{ms:.3}")).collect();
        std::fs::write(&path, lines.join("\n")).map_err(|e| Error::io(&path, e))?;
    }
    for (label, ms) in slowest.iter().take(12) {
        println!("  {label:<60} {ms:9.2} ms");
    }
    Ok(())
}
