//! C = op(A)·op(B), batched; B may be 2-D (shared by every batch).

pub fn matmul(ta: bool, tb: bool, a: &[f64], sa: &[usize], b: &[f64], sb: &[usize]) -> Vec<f64> {
    let (ar, ac) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (br, bc) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let batch: usize = sa[..sa.len() - 2].iter().product();
    let b_stride = if sb.len() == 2 { 0 } else { k * n };
    let mut c = vec![0.0; batch * m * n];
    for bi in 0..batch {
        let (ao, bo) = (bi * m * k, bi * b_stride);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for kk in 0..k {
                    let av = if ta {
                        a[ao + kk * m + i]
                    } else {
                        a[ao + i * k + kk]
                    };
                    let bv = if tb {
                        b[bo + j * k + kk]
                    } else {
                        b[bo + kk * n + j]
                    };
                    s += av * bv;
                }
                c[bi * m * n + i * n + j] = s;
            }
        }
    }
    c
}
