//! The memory budget a model's buffers are checked against before any is allocated
//! (docs/architecture.md, "Memory"). wgpu reports no free-memory figure for a GPU, so the
//! budget is known only where it can be: `PADNET_MEMORY_BUDGET` when set, otherwise, for a CPU
//! adapter (lavapipe, whose "GPU memory" is this machine's RAM), the memory the OS says is
//! available. On a GPU without the variable, only the per-buffer limits apply and the driver's
//! out-of-memory error is reported when it comes.

use crate::error::{Error, Result};

/// The environment variable that sets the budget: bytes, or a number with a K/M/G/T suffix
/// (KiB, MiB, GiB and TiB, powers of 1024).
pub const BUDGET_VAR: &str = "PADNET_MEMORY_BUDGET";

/// A number of bytes that may be allocated, and where that number came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub bytes: u64,
    pub source: &'static str,
}

/// The budget for buffers on an adapter of `device_type`, if one is known.
pub fn device_budget(device_type: wgpu::DeviceType) -> Result<Option<Budget>> {
    if let Some(b) = env_budget()? {
        return Ok(Some(b));
    }
    Ok(match device_type {
        wgpu::DeviceType::Cpu => host_budget(),
        _ => None,
    })
}

/// The budget for host memory (initial values, read-backs), if one is known.
pub fn host_memory_budget() -> Result<Option<Budget>> {
    Ok(env_budget()?.or_else(host_budget))
}

fn env_budget() -> Result<Option<Budget>> {
    let Some(value) = std::env::var_os(BUDGET_VAR) else {
        return Ok(None);
    };
    let text = value.to_string_lossy();
    let bytes = parse_bytes(&text).ok_or_else(|| {
        Error::Invalid(format!(
            "{BUDGET_VAR}={text:?} is not a size; write bytes or a number with K, M, G or T (e.g. 6G)"
        ))
    })?;
    Ok(Some(Budget {
        bytes,
        source: BUDGET_VAR,
    }))
}

fn host_budget() -> Option<Budget> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some(Budget {
        bytes: mem_available(&meminfo)?,
        source: "the memory this machine has available (MemAvailable)",
    })
}

/// `MemAvailable` of a /proc/meminfo text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Parses `1234`, `512K`, `1.5G`, `6GiB` or `6GB` (all suffixes are powers of 1024).
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    let value: f64 = number.trim().parse().ok()?;
    let bytes = value * (1u64 << shift) as f64;
    (value.is_finite() && value >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Bytes in the largest binary unit they reach (`512 B`, `3.9 MiB`, `1.50 GiB`), for messages.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..0x10_0000 => format!("{:.1} KiB", b / 1024.0),
        0x10_0000..0x4000_0000 => format!("{:.1} MiB", b / 1048576.0),
        _ => format!("{:.2} GiB", b / 1073741824.0),
    }
}

/// Errors when `parts` (each a description and a byte count) add up to more than `budget`;
/// `what` is a plural subject ("the compiled graph's buffers"), `advice` what to change.
pub fn check(
    what: &str,
    parts: &[(&str, u64)],
    budget: Option<Budget>,
    advice: &str,
) -> Result<()> {
    let need: u64 = parts.iter().map(|(_, b)| b).sum();
    let Some(budget) = budget else { return Ok(()) };
    if need <= budget.bytes {
        return Ok(());
    }
    let parts: Vec<String> = parts
        .iter()
        .map(|(name, b)| format!("{name} {}", size(*b)))
        .collect();
    Err(Error::Invalid(format!(
        "{what} take {} ({}), over the memory budget of {} ({}); {advice}, or set {BUDGET_VAR}",
        size(need),
        parts.join(", "),
        size(budget.bytes),
        budget.source
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_bytes("1234"), Some(1234));
        assert_eq!(parse_bytes("512K"), Some(512 << 10));
        assert_eq!(parse_bytes("6GiB"), Some(6 << 30));
        assert_eq!(parse_bytes(" 1.5 G "), Some(3 << 29));
        assert_eq!(parse_bytes("2tb"), Some(2 << 40));
        for bad in ["", "G", "-1G", "nanG", "1Q", "1e30T", "inf"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes_print_in_their_largest_unit() {
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(4000), "3.9 KiB");
        assert_eq!(size(40 << 20), "40.0 MiB");
        assert_eq!(size(3 << 29), "1.50 GiB");
    }

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(mem_available(meminfo), Some(2048 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn over_budget_names_every_part_and_the_source() {
        let budget = Some(Budget {
            bytes: 1 << 30,
            source: "a test",
        });
        let parts = [("weights", 1u64 << 30), ("activations", 1 << 29)];
        let err = check("the buffers", &parts, budget, "lower --batch-size")
            .unwrap_err()
            .to_string();
        for want in [
            "take 1.50 GiB",
            "weights 1.00 GiB",
            "activations 512.0 MiB",
            "a test",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
        assert!(check("the graph", &parts[..1], budget, "").is_ok());
        assert!(check("the graph", &parts, None, "").is_ok());
    }
}
