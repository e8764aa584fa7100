//! Dimension arithmetic shared by shape inference and the kernel plans: broadcast folding,
//! permutations, and the dimensions of (grouped) matrix products.

use crate::error::{Error, Result};

/// Maximum rank after folding.
pub const MAX_RANK: usize = 8;

/// Folds `full` and the broadcast operand `small` (right-aligned, missing leading axes = 1)
/// into (dims, kept): adjacent axes with the same broadcast status merged; `kept[k]` says the
/// small operand has axis k. Errors name both shapes.
pub fn broadcast_fold(
    op: &str,
    full: &[usize],
    small: &[usize],
) -> Result<(Vec<usize>, Vec<bool>)> {
    let err = || Error::shape(op, format!("{small:?} does not broadcast to {full:?}"));
    if small.len() > full.len() {
        return Err(err());
    }
    let pad = full.len() - small.len();
    let mut dims: Vec<usize> = vec![];
    let mut kept: Vec<bool> = vec![];
    for (k, &d) in full.iter().enumerate() {
        let s = if k < pad { 1 } else { small[k - pad] };
        if s != d && s != 1 {
            return Err(err());
        }
        if d == 1 {
            continue; // size-1 axes change no index
        }
        let keep = s == d;
        match (dims.last_mut(), kept.last()) {
            (Some(last), Some(&kl)) if kl == keep => *last *= d,
            _ => {
                dims.push(d);
                kept.push(keep);
            }
        }
    }
    if dims.is_empty() {
        dims.push(1);
        kept.push(true);
    }
    if dims.len() > MAX_RANK {
        return Err(Error::shape(
            op,
            format!("broadcast of {small:?} to {full:?} needs more than {MAX_RANK} folded axes"),
        ));
    }
    Ok((dims, kept))
}

/// Checks that `perm` is a permutation of `0..rank` for a tensor of `rank ≤ 8`.
pub fn check_perm(shape: &[usize], perm: &[usize]) -> Result<()> {
    let mut seen = vec![false; shape.len()];
    let ok = perm.len() == shape.len()
        && shape.len() <= MAX_RANK
        && perm
            .iter()
            .all(|&a| a < shape.len() && !std::mem::replace(&mut seen[a], true));
    if ok {
        Ok(())
    } else {
        Err(Error::shape(
            "permute",
            format!("{perm:?} is not a permutation of the axes of {shape:?}"),
        ))
    }
}

/// (batch, M, K) of op(A) and (batch of B or 0 when shared, K, N) of op(B).
pub fn matmul_dims(
    trans_a: bool,
    trans_b: bool,
    a: &[usize],
    b: &[usize],
) -> Result<(usize, usize, usize, usize, usize)> {
    let err = || {
        Error::shape(
            "matmul",
            format!("a {a:?} (trans {trans_a}) vs b {b:?} (trans {trans_b})"),
        )
    };
    if a.len() < 2 || b.len() < 2 {
        return Err(err());
    }
    let (ar, ac) = (a[a.len() - 2], a[a.len() - 1]);
    let (br, bc) = (b[b.len() - 2], b[b.len() - 1]);
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if trans_b { (bc, br) } else { (br, bc) };
    let batch: usize = a[..a.len() - 2].iter().product();
    let b_batch = if b.len() == 2 {
        0
    } else if b[..b.len() - 2] == a[..a.len() - 2] {
        batch
    } else {
        return Err(err());
    };
    if k != k2 || m == 0 || n == 0 || k == 0 {
        return Err(err());
    }
    Ok((batch, m, k, b_batch, n))
}

pub fn matmul_shape(trans_a: bool, trans_b: bool, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let (_, m, _, _, n) = matmul_dims(trans_a, trans_b, a, b)?;
    let mut s = a[..a.len() - 2].to_vec();
    s.extend([m, n]);
    Ok(s)
}

/// Shape of a grouped matmul (see `Op::GroupedMatMul`): (groups E, m, k, n, output shape).
pub fn grouped_matmul_dims(
    trans_a: bool,
    trans_b: bool,
    by_k: bool,
    a: &[usize],
    b: &[usize],
    groups: &[usize],
) -> Result<(usize, usize, usize, usize, Vec<usize>)> {
    let bad = || {
        Error::shape(
            "grouped_matmul",
            format!(
                "A {a:?}, B {b:?}, groups {groups:?} (by_k {by_k}, trans_a {trans_a}, trans_b {trans_b})"
            ),
        )
    };
    if groups.len() != 1 || groups[0] < 2 || a.len() != 2 {
        return Err(bad());
    }
    let e = groups[0] - 1;
    if by_k {
        // A [R, M] (stored K x M), B [R, N] -> [E, M, N]
        if !trans_a || trans_b || b.len() != 2 || b[0] != a[0] {
            return Err(bad());
        }
        Ok((e, a[1], a[0], b[1], vec![e, a[1], b[1]]))
    } else {
        // A [R, K], B [E, N, K] (trans_b) or [E, K, N] -> [R, N]
        if trans_a || b.len() != 3 || b[0] != e {
            return Err(bad());
        }
        let (k, n) = if trans_b { (b[2], b[1]) } else { (b[1], b[2]) };
        if k != a[1] {
            return Err(bad());
        }
        Ok((e, a[0], k, n, vec![a[0], n]))
    }
}
