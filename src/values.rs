//! Parsers of numeric command-line values, so that every number is checked for finiteness and
//! range when it is parsed, before any work starts (clap `value_parser`s; the message names the
//! range, clap names the option and the value).

/// A whole number ≥ 1 (epochs, batch sizes, counts, sizes).
pub fn count(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| "expected a whole number ≥ 1".to_string())?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

fn finite(s: &str) -> Result<f64, String> {
    let x: f64 = s
        .trim()
        .parse()
        .map_err(|_| "expected a number".to_string())?;
    if !x.is_finite() {
        return Err("must be a finite number".into());
    }
    Ok(x)
}

/// `finite(s)` that lies in the range `ok` describes as `range`.
fn within(s: &str, ok: impl Fn(f64) -> bool, range: &str) -> Result<f64, String> {
    let x = finite(s)?;
    if !ok(x) {
        return Err(format!("must be {range}"));
    }
    Ok(x)
}

/// A finite number > 0 (learning rate, γ, width, temperature, capacity factor).
pub fn positive(s: &str) -> Result<f32, String> {
    within(s, |x| x > 0.0 && x <= f32::MAX as f64, "> 0").map(|x| x as f32)
}

/// A finite number ≥ 0 (weight decay, epochs of warm-up or annealing).
pub fn non_negative(s: &str) -> Result<f32, String> {
    within(s, |x| (0.0..=f32::MAX as f64).contains(&x), "≥ 0").map(|x| x as f32)
}

/// A number in [0, 1) (momentum, label smoothing).
pub fn below_one(s: &str) -> Result<f32, String> {
    within(s, |x| (0.0..1.0).contains(&x), "in [0, 1)").map(|x| x as f32)
}

/// A number in [0, 1] (warm-up ratio).
pub fn ratio(s: &str) -> Result<f32, String> {
    within(s, |x| (0.0..=1.0).contains(&x), "in [0, 1]").map(|x| x as f32)
}

/// A number ≥ 1 (the initial attention temperature).
pub fn at_least_one(s: &str) -> Result<f32, String> {
    within(s, |x| (1.0..=f32::MAX as f64).contains(&x), "≥ 1").map(|x| x as f32)
}

/// A dynamic fraction κ in (0, 1].
pub fn kappa(s: &str) -> Result<f64, String> {
    within(s, |x| x > 0.0 && x <= 1.0, "in (0, 1]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_non_finite_values() {
        assert_eq!(count("3"), Ok(3));
        for bad in ["0", "-1", "1.5", "", "x"] {
            assert!(count(bad).is_err(), "{bad}");
        }
        for bad in ["nan", "NaN", "inf", "-inf", "1e39", "0", "-0.1"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert_eq!(positive("1e-4"), Ok(1e-4));
        assert!(non_negative("-1e9").is_err() && non_negative("0").is_ok());
        assert!(below_one("1").is_err() && below_one("0.9").is_ok());
        assert!(ratio("1").is_ok() && ratio("1.01").is_err());
        assert!(at_least_one("0.5").is_err() && at_least_one("30").is_ok());
        assert!(kappa("0").is_err() && kappa("2").is_err() && kappa("1").is_ok());
        assert_eq!(positive("nan").unwrap_err(), "must be a finite number");
    }
}
