// 2-D convolution, NCHW, with stride, padding, dilation and groups — forward, input gradient and
// weight gradient, each an implicit GEMM (no im2col buffer) with the register blocking of
// gemm.wgsl: an invocation owns 8 rows x 8 columns (columns strided by 8), a workgroup of 8x8
// invocations a 64x64 tile; accumulators are indexed only with constants.
//
//   forward      rows = output channels of the group, cols = (n, oy, ox),  k = (ci, ky, kx)
//   grad_input   rows = input channels of the group,  cols = (n, iy, ix),  k = (oc, ky, kx)
//   grad_weight  rows = output channels of the group, cols = (ci, ky, kx),  k = (n, oy, ox)
//
// Out-of-range rows/columns are clamped on load and masked on store; padding taps read a
// clamped in-range address and are zeroed with `select`, so no load is ever out of bounds.

struct Params {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, kh: u32, kw: u32, groups: u32,
    oh: u32, ow: u32, sh: u32, sw: u32,
    ph: u32, pw: u32, dh: u32, dw: u32,
    tiles_n: u32, n_per_split: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> lhs: array<f32>;
@group(0) @binding(2) var<storage, read> rhs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// Strides as compile-time constants so grad_input's divisibility tests become shifts/masks.
override SH: u32 = 1u;
override SW: u32 = 1u;

var<private> acc: array<vec4<f32>, 16>;

fn fma_row(i: u32, a: f32, b0: vec4<f32>, b1: vec4<f32>) {
    acc[2u * i] = fma(vec4<f32>(a), b0, acc[2u * i]);
    acc[2u * i + 1u] = fma(vec4<f32>(a), b1, acc[2u * i + 1u]);
}

// Row i of the accumulators as 8 scalars, for the explicitly unrolled stores below (a dynamic
// index into `acc` would move it to scratch memory).
fn row_vals(i: u32) -> array<f32, 8> {
    let lo = acc[2u * i];
    let hi = acc[2u * i + 1u];
    return array<f32, 8>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w);
}

struct Tile { grp: u32, row0: u32, col0: u32, split: u32, valid: bool }

fn tile_of(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, rows: u32, cols: u32, splits: u32) -> Tile {
    let tile = wg.x + wg.y * nwg.x;
    let tiles_m = (rows + 63u) / 64u;
    let per_group = tiles_m * p.tiles_n;
    var t: Tile;
    let gs = tile / per_group;
    t.grp = gs % p.groups;
    t.split = gs / p.groups;
    let r = tile % per_group;
    t.row0 = (r / p.tiles_n) * 64u + lid.y * 8u;
    t.col0 = (r % p.tiles_n) * 64u + lid.x;
    t.valid = t.split < splits && t.row0 < rows && t.col0 < cols;
    return t;
}

// Input value at (base + iy*w + ix), zero outside the image.
fn x_at(base: u32, iy: i32, ix: i32) -> f32 {
    let ok = u32(iy) < p.h && u32(ix) < p.w;
    return select(0.0, lhs[select(0u, base + u32(iy) * p.w + u32(ix), ok)], ok);
}

@compute @workgroup_size(8, 8, 1)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    // lhs = x [n, c, h, w], rhs = weight [o, c/g, kh, kw], out = y [n, o, oh, ow]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let ohw = p.oh * p.ow;
    let cols = p.n * ohw;
    let t = tile_of(wg, nwg, lid, og, cols, 1u);
    if (!t.valid) { return; }
    let hw = p.h * p.w;
    let khw = p.kh * p.kw;

    var w_off: array<u32, 8>;
    var x_base: array<u32, 8>;
    var iy0: array<i32, 8>;
    var ix0: array<i32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w_off[i] = (t.grp * og + min(t.row0 + i, og - 1u)) * cg * khw;
        let col = min(t.col0 + 8u * i, cols - 1u);
        let nn = col / ohw;
        let s = col % ohw;
        x_base[i] = (nn * p.c + t.grp * cg) * hw;
        iy0[i] = i32((s / p.ow) * p.sh) - i32(p.ph);
        ix0[i] = i32((s % p.ow) * p.sw) - i32(p.pw);
    }
    var kidx = 0u;
    for (var ci = 0u; ci < cg; ci++) {
        let coff = ci * hw;
        for (var ky = 0u; ky < p.kh; ky++) {
            let dy = i32(ky * p.dh);
            for (var kx = 0u; kx < p.kw; kx++) {
                let dx = i32(kx * p.dw);
                let b0 = vec4<f32>(x_at(x_base[0] + coff, iy0[0] + dy, ix0[0] + dx),
                                   x_at(x_base[1] + coff, iy0[1] + dy, ix0[1] + dx),
                                   x_at(x_base[2] + coff, iy0[2] + dy, ix0[2] + dx),
                                   x_at(x_base[3] + coff, iy0[3] + dy, ix0[3] + dx));
                let b1 = vec4<f32>(x_at(x_base[4] + coff, iy0[4] + dy, ix0[4] + dx),
                                   x_at(x_base[5] + coff, iy0[5] + dy, ix0[5] + dx),
                                   x_at(x_base[6] + coff, iy0[6] + dy, ix0[6] + dx),
                                   x_at(x_base[7] + coff, iy0[7] + dy, ix0[7] + dx));
                for (var i = 0u; i < 8u; i++) {
                    fma_row(i, rhs[w_off[i] + kidx], b0, b1);
                }
                kidx++;
            }
        }
    }
    for (var i = 0u; i < 8u; i++) {
        let r = t.row0 + i;
        if (r < og) {
            let ch = t.grp * og + r;
            let v = row_vals(i);
            for (var j = 0u; j < 8u; j++) {
                let col = t.col0 + 8u * j;
                if (col < cols) {
                    let nn = col / ohw;
                    out[(nn * p.o + ch) * ohw + col % ohw] = v[j];
                }
            }
        }
    }
}

// dy value for output position (ty/SH, tx/SW) if it exists, else 0.
fn dy_at(base: u32, ty: i32, tx: i32) -> f32 {
    let oy = u32(ty) / SH;
    let ox = u32(tx) / SW;
    let ok = ty >= 0 && tx >= 0 && u32(ty) % SH == 0u && u32(tx) % SW == 0u && oy < p.oh && ox < p.ow;
    return select(0.0, rhs[select(0u, base + oy * p.ow + ox, ok)], ok);
}

@compute @workgroup_size(8, 8, 1)
fn grad_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    // lhs = weight [o, c/g, kh, kw], rhs = dy [n, o, oh, ow], out = dx [n, c, h, w]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let hw = p.h * p.w;
    let cols = p.n * hw;
    let t = tile_of(wg, nwg, lid, cg, cols, 1u);
    if (!t.valid) { return; }
    let ohw = p.oh * p.ow;
    let khw = p.kh * p.kw;

    var w_off: array<u32, 8>;
    var dy_base: array<u32, 8>;
    var ty0: array<i32, 8>;
    var tx0: array<i32, 8>;
    for (var i = 0u; i < 8u; i++) {
        w_off[i] = (t.grp * og * cg + min(t.row0 + i, cg - 1u)) * khw;
        let col = min(t.col0 + 8u * i, cols - 1u);
        let nn = col / hw;
        let s = col % hw;
        dy_base[i] = (nn * p.o + t.grp * og) * ohw;
        ty0[i] = i32(s / p.w + p.ph);
        tx0[i] = i32(s % p.w + p.pw);
    }
    for (var oc = 0u; oc < og; oc++) {
        let doff = oc * ohw;
        let woff = oc * cg * khw;
        for (var ky = 0u; ky < p.kh; ky++) {
            let dy = i32(ky * p.dh);
            for (var kx = 0u; kx < p.kw; kx++) {
                let dx = i32(kx * p.dw);
                let b0 = vec4<f32>(dy_at(dy_base[0] + doff, ty0[0] - dy, tx0[0] - dx),
                                   dy_at(dy_base[1] + doff, ty0[1] - dy, tx0[1] - dx),
                                   dy_at(dy_base[2] + doff, ty0[2] - dy, tx0[2] - dx),
                                   dy_at(dy_base[3] + doff, ty0[3] - dy, tx0[3] - dx));
                let b1 = vec4<f32>(dy_at(dy_base[4] + doff, ty0[4] - dy, tx0[4] - dx),
                                   dy_at(dy_base[5] + doff, ty0[5] - dy, tx0[5] - dx),
                                   dy_at(dy_base[6] + doff, ty0[6] - dy, tx0[6] - dx),
                                   dy_at(dy_base[7] + doff, ty0[7] - dy, tx0[7] - dx));
                let kofs = woff + ky * p.kw + kx;
                for (var i = 0u; i < 8u; i++) {
                    fma_row(i, lhs[w_off[i] + kofs], b0, b1);
                }
            }
        }
    }
    for (var i = 0u; i < 8u; i++) {
        let r = t.row0 + i;
        if (r < cg) {
            let ch = t.grp * cg + r;
            let v = row_vals(i);
            for (var j = 0u; j < 8u; j++) {
                let col = t.col0 + 8u * j;
                if (col < cols) {
                    let nn = col / hw;
                    out[(nn * p.c + ch) * hw + col % hw] = v[j];
                }
            }
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn grad_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    // lhs = x [n, c, h, w], rhs = dy [n, o, oh, ow],
    // out = dw [o, c/g, kh, kw], or with split-K partial sums [splits, o, c/g, kh, kw]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let khw = p.kh * p.kw;
    let cols = cg * khw;
    let splits = (p.n + p.n_per_split - 1u) / p.n_per_split;
    let t = tile_of(wg, nwg, lid, og, cols, splits);
    if (!t.valid) { return; }
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;

    var dy_off: array<u32, 8>;
    var x_off: array<u32, 8>;
    var offy: array<i32, 8>;
    var offx: array<i32, 8>;
    for (var i = 0u; i < 8u; i++) {
        dy_off[i] = (t.grp * og + min(t.row0 + i, og - 1u)) * ohw;
        let col = min(t.col0 + 8u * i, cols - 1u);
        let ci = col / khw;
        let kk = col % khw;
        x_off[i] = (t.grp * cg + ci) * hw;
        offy[i] = i32((kk / p.kw) * p.dh) - i32(p.ph);
        offx[i] = i32((kk % p.kw) * p.dw) - i32(p.pw);
    }
    let n0 = t.split * p.n_per_split;
    let n1 = min(n0 + p.n_per_split, p.n);
    for (var nn = n0; nn < n1; nn++) {
        let xb = nn * p.c * hw;
        let db = nn * p.o * ohw;
        for (var oy = 0u; oy < p.oh; oy++) {
            let iy = i32(oy * p.sh);
            for (var ox = 0u; ox < p.ow; ox++) {
                let ix = i32(ox * p.sw);
                let b0 = vec4<f32>(x_at(xb + x_off[0], iy + offy[0], ix + offx[0]),
                                   x_at(xb + x_off[1], iy + offy[1], ix + offx[1]),
                                   x_at(xb + x_off[2], iy + offy[2], ix + offx[2]),
                                   x_at(xb + x_off[3], iy + offy[3], ix + offx[3]));
                let b1 = vec4<f32>(x_at(xb + x_off[4], iy + offy[4], ix + offx[4]),
                                   x_at(xb + x_off[5], iy + offy[5], ix + offx[5]),
                                   x_at(xb + x_off[6], iy + offy[6], ix + offx[6]),
                                   x_at(xb + x_off[7], iy + offy[7], ix + offx[7]));
                let s = db + oy * p.ow + ox;
                for (var i = 0u; i < 8u; i++) {
                    fma_row(i, rhs[dy_off[i] + s], b0, b1);
                }
            }
        }
    }
    let split_off = t.split * p.o * cols;
    for (var i = 0u; i < 8u; i++) {
        let r = t.row0 + i;
        if (r < og) {
            let row_off = split_off + (t.grp * og + r) * cols;
            let v = row_vals(i);
            for (var j = 0u; j < 8u; j++) {
                let col = t.col0 + 8u * j;
                if (col < cols) { out[row_off + col] = v[j]; }
            }
        }
    }
}
