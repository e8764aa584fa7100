// BatchNorm over x viewed as [n, c, inner]: statistics per channel c over n and inner.
// Train: batch mean and biased variance normalise; the running statistics move by `momentum`
// with the unbiased variance (PyTorch semantics). Eval: the running statistics normalise.
// Reductions: one workgroup of 64 invocations per channel, tree-reduced in workgroup memory;
// two passes (mean, then centred squares) for accuracy.

struct Params { n: u32, c: u32, inner: u32, eps: f32, momentum: f32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;

var<workgroup> red: array<f32, 64>;
var<workgroup> red2: array<f32, 64>;

fn count() -> u32 { return p.n * p.inner; }

// Index of the k-th element (k < n*inner) of channel c.
fn at(c: u32, k: u32) -> u32 {
    let nn = k / p.inner;
    return (nn * p.c + c) * p.inner + k % p.inner;
}

// Sums `red` (and `red2`) over the workgroup; result in element 0.
fn reduce_pair(lid: u32) {
    for (var s = 32u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lid < s) {
            red[lid] += red[lid + s];
            red2[lid] += red2[lid + s];
        }
    }
    workgroupBarrier();
}

// ---- train statistics: x -> (mean, inv_std); running stats updated in place ----
@group(0) @binding(1) var<storage, read> st_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> st_running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> st_running_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> st_inv_std: array<f32>;

@compute @workgroup_size(64)
fn stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = wg.x;
    let lid = lid3.x;
    let cnt = count();
    var s = 0.0;
    for (var k = lid; k < cnt; k += 64u) { s += st_x[at(c, k)]; }
    red[lid] = s;
    red2[lid] = 0.0;
    reduce_pair(lid);
    let mean = red[0] / f32(cnt);
    workgroupBarrier();
    var q = 0.0;
    for (var k = lid; k < cnt; k += 64u) { let d = st_x[at(c, k)] - mean; q += d * d; }
    red[lid] = q;
    red2[lid] = 0.0;
    reduce_pair(lid);
    if (lid == 0u) {
        let var_b = red[0] / f32(cnt);
        st_mean[c] = mean;
        st_inv_std[c] = inverseSqrt(var_b + p.eps);
        let unbiased = var_b * f32(cnt) / f32(max(cnt, 2u) - 1u);
        st_running_mean[c] = (1.0 - p.momentum) * st_running_mean[c] + p.momentum * mean;
        st_running_var[c] = (1.0 - p.momentum) * st_running_var[c] + p.momentum * unbiased;
    }
}

// ---- normalise: y = (x - mean) * inv_std * gamma + beta ----
// TRAIN: s1 = batch mean, s2 = inv_std.  EVAL: s1 = running mean, s2 = running var.
override TRAIN: bool = true;
@group(0) @binding(1) var<storage, read> ap_x: array<f32>;
@group(0) @binding(2) var<storage, read> ap_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> ap_beta: array<f32>;
@group(0) @binding(4) var<storage, read> ap_s1: array<f32>;
@group(0) @binding(5) var<storage, read> ap_s2: array<f32>;
@group(0) @binding(6) var<storage, read_write> ap_y: array<f32>;

@compute @workgroup_size(256)
fn apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.x + wg.y * nwg.x) * 256u + lid.x;
    if (i >= p.n * p.c * p.inner) { return; }
    let c = (i / p.inner) % p.c;
    var inv_std = ap_s2[c];
    if (!TRAIN) { inv_std = inverseSqrt(ap_s2[c] + p.eps); }
    ap_y[i] = (ap_x[i] - ap_s1[c]) * inv_std * ap_gamma[c] + ap_beta[c];
}

// ---- backward reduce: dgamma = sum dy * xhat, dbeta = sum dy ----
@group(0) @binding(1) var<storage, read> gr_x: array<f32>;
@group(0) @binding(2) var<storage, read> gr_mean: array<f32>;
@group(0) @binding(3) var<storage, read> gr_inv_std: array<f32>;
@group(0) @binding(4) var<storage, read> gr_dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> gr_dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> gr_dbeta: array<f32>;

@compute @workgroup_size(64)
fn grad_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = wg.x;
    let lid = lid3.x;
    let mean = gr_mean[c];
    let inv_std = gr_inv_std[c];
    var sdy = 0.0;
    var sdyx = 0.0;
    for (var k = lid; k < count(); k += 64u) {
        let idx = at(c, k);
        let dy = gr_dy[idx];
        sdy += dy;
        sdyx += dy * (gr_x[idx] - mean) * inv_std;
    }
    red[lid] = sdy;
    red2[lid] = sdyx;
    reduce_pair(lid);
    if (lid == 0u) {
        gr_dbeta[c] = red[0];
        gr_dgamma[c] = red2[0];
    }
}

// ---- backward input: dx = gamma * inv_std * (dy - dbeta/M - xhat * dgamma/M) ----
@group(0) @binding(1) var<storage, read> gi_x: array<f32>;
@group(0) @binding(2) var<storage, read> gi_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> gi_mean: array<f32>;
@group(0) @binding(4) var<storage, read> gi_inv_std: array<f32>;
@group(0) @binding(5) var<storage, read> gi_dy: array<f32>;
@group(0) @binding(6) var<storage, read> gi_dgamma: array<f32>;
@group(0) @binding(7) var<storage, read> gi_dbeta: array<f32>;
@group(0) @binding(8) var<storage, read_write> gi_dx: array<f32>;

@compute @workgroup_size(256)
fn grad_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wg.x + wg.y * nwg.x) * 256u + lid.x;
    if (i >= p.n * p.c * p.inner) { return; }
    let c = (i / p.inner) % p.c;
    let m = f32(count());
    let inv_std = gi_inv_std[c];
    let xhat = (gi_x[i] - gi_mean[c]) * inv_std;
    gi_dx[i] = gi_gamma[c] * inv_std * (gi_dy[i] - gi_dbeta[c] / m - xhat * gi_dgamma[c] / m);
}
