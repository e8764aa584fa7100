//! Direct (loop) convolution and its two gradients: the definition, not an implicit GEMM.

use crate::kernels::conv::ConvGeom;

/// Calls `f(y_index, x_index, w_index)` for every tap of the convolution that reads the image
/// (padding taps contribute zero and are skipped).
fn taps(g: &ConvGeom, mut f: impl FnMut(usize, usize, usize)) {
    let (cg, og) = (g.c / g.groups, g.o / g.groups);
    for n in 0..g.n {
        for o in 0..g.o {
            let grp = o / og;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let yi = ((n * g.o + o) * g.oh + oy) * g.ow + ox;
                    for ci in 0..cg {
                        for ky in 0..g.kh {
                            let iy = (oy * g.stride.0 + ky * g.dil.0) as isize - g.pad.0 as isize;
                            if iy < 0 || iy >= g.h as isize {
                                continue;
                            }
                            for kx in 0..g.kw {
                                let ix =
                                    (ox * g.stride.1 + kx * g.dil.1) as isize - g.pad.1 as isize;
                                if ix < 0 || ix >= g.w as isize {
                                    continue;
                                }
                                let c = grp * cg + ci;
                                let xi = ((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize;
                                let wi = ((o * cg + ci) * g.kh + ky) * g.kw + kx;
                                f(yi, xi, wi);
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn forward(g: &ConvGeom, x: &[f64], w: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; g.n * g.o * g.oh * g.ow];
    taps(g, |yi, xi, wi| y[yi] += x[xi] * w[wi]);
    y
}

pub fn grad_input(g: &ConvGeom, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; g.n * g.c * g.h * g.w];
    taps(g, |yi, xi, wi| dx[xi] += dy[yi] * w[wi]);
    dx
}

pub fn grad_weight(g: &ConvGeom, x: &[f64], dy: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; g.o * (g.c / g.groups) * g.kh * g.kw];
    taps(g, |yi, xi, wi| dw[wi] += dy[yi] * x[xi]);
    dw
}
