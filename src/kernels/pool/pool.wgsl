// Max and average pooling over NCHW (no ceil mode). Backward passes gather over the windows
// that contain each input element, so overlapping windows need no atomics.
// Average pooling counts padding (PyTorch's default count_include_pad=True).

struct Params {
    planes: u32, h: u32, w: u32, oh: u32,
    ow: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, ph: u32, pw: u32, _p: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// Windows tile the input without overlap or padding (kernel == stride, padding 0): each input
// element lies in at most one window, and the backward passes need no window loop.
override DISJOINT: bool = false;

// The window holding input element `at` of a plane when DISJOINT, or oh*ow if none.
fn disjoint_window(at: u32) -> u32 {
    let oy = (at / p.w) / p.kh;
    let ox = (at % p.w) / p.kw;
    return select(p.oh * p.ow, oy * p.ow + ox, oy < p.oh && ox < p.ow);
}

const WG_SIZE: u32 = 64u;
//@include index

// ---- max pool: x -> (y, argmax within the plane) ----
@group(0) @binding(1) var<storage, read> mp_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mp_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> mp_arg: array<u32>;

@compute @workgroup_size(WG_SIZE)
fn max_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    let ohw = p.oh * p.ow;
    if (i >= p.planes * ohw) { return; }
    let plane = i / ohw;
    let oy = (i % ohw) / p.ow;
    let ox = i % p.ow;
    let base = plane * p.h * p.w;
    var best = -3.4028235e38;
    var arg = 0u;
    var found = false;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy * p.sh + ky) - i32(p.ph);
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(ox * p.sw + kx) - i32(p.pw);
            if (u32(iy) < p.h && u32(ix) < p.w) {
                let at = u32(iy) * p.w + u32(ix);
                let v = mp_x[base + at];
                // NaN propagates as in PyTorch: a NaN always wins.
                if (!found || v > best || v != v) { best = v; arg = at; found = true; }
            }
        }
    }
    mp_y[i] = best;
    mp_arg[i] = arg;
}

// Output windows that contain input coordinate t: o in [lo, hi] along one axis.
fn window_range(t: u32, pad: u32, k: u32, s: u32, n_out: u32) -> vec2<i32> {
    let tp = i32(t + pad);
    let lo = max(0, (tp - i32(k) + i32(s)) / i32(s));
    let hi = min(i32(n_out) - 1, tp / i32(s));
    return vec2<i32>(lo, hi);
}

// ---- max pool backward: (dy, argmax) -> dx ----
@group(0) @binding(1) var<storage, read> mg_dy: array<f32>;
@group(0) @binding(2) var<storage, read> mg_arg: array<u32>;
@group(0) @binding(3) var<storage, read_write> mg_dx: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn max_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    let hw = p.h * p.w;
    if (i >= p.planes * hw) { return; }
    let plane = i / hw;
    let at = i % hw;
    if (DISJOINT) {
        let win = disjoint_window(at);
        let o = plane * p.oh * p.ow + min(win, p.oh * p.ow - 1u);
        mg_dx[i] = select(0.0, mg_dy[o], win < p.oh * p.ow && mg_arg[o] == at);
        return;
    }
    let ry = window_range(at / p.w, p.ph, p.kh, p.sh, p.oh);
    let rx = window_range(at % p.w, p.pw, p.kw, p.sw, p.ow);
    var s = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        for (var ox = rx.x; ox <= rx.y; ox++) {
            let o = plane * p.oh * p.ow + u32(oy) * p.ow + u32(ox);
            if (mg_arg[o] == at) { s += mg_dy[o]; }
        }
    }
    mg_dx[i] = s;
}

// ---- average pool: x -> y ----
@group(0) @binding(1) var<storage, read> ap_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> ap_y: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn avg_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    let ohw = p.oh * p.ow;
    if (i >= p.planes * ohw) { return; }
    let plane = i / ohw;
    let oy = (i % ohw) / p.ow;
    let ox = i % p.ow;
    let base = plane * p.h * p.w;
    var s = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy * p.sh + ky) - i32(p.ph);
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(ox * p.sw + kx) - i32(p.pw);
            if (u32(iy) < p.h && u32(ix) < p.w) { s += ap_x[base + u32(iy) * p.w + u32(ix)]; }
        }
    }
    ap_y[i] = s / f32(p.kh * p.kw);
}

// ---- average pool backward: dy -> dx ----
@group(0) @binding(1) var<storage, read> ag_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> ag_dx: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn avg_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    let hw = p.h * p.w;
    if (i >= p.planes * hw) { return; }
    let plane = i / hw;
    let at = i % hw;
    if (DISJOINT) {
        let win = disjoint_window(at);
        let o = plane * p.oh * p.ow + min(win, p.oh * p.ow - 1u);
        ag_dx[i] = select(0.0, ag_dy[o] / f32(p.kh * p.kw), win < p.oh * p.ow);
        return;
    }
    let ry = window_range(at / p.w, p.ph, p.kh, p.sh, p.oh);
    let rx = window_range(at % p.w, p.pw, p.kw, p.sw, p.ow);
    var s = 0.0;
    for (var oy = ry.x; oy <= ry.y; oy++) {
        for (var ox = rx.x; ox <= rx.y; ox++) {
            s += ag_dy[plane * p.oh * p.ow + u32(oy) * p.ow + u32(ox)];
        }
    }
    ag_dx[i] = s / f32(p.kh * p.kw);
}
