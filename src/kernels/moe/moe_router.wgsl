// The MoE router's kernels (docs/method.md §1.3): the noise, the smooth load estimate and cv²;
// the dispatch and combine are in moe.wgsl. Each entry binds only what it uses.

struct Params { len: u32, inner: u32, channels: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> d_seed: array<u32>;

//@include erf
//@include hash

const WG_SIZE: u32 = 256u;
//@include index

// Standard normal noise: Box–Muller on two 24-bit uniforms hashed from (seed, salt, element);
// d_seed = [seed, rank] (elements numbered in the global batch's tensor, as in dropout),
// inner = salt.
@compute @workgroup_size(WG_SIZE)
fn random_normal(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.len) { return; }
    let key = pcg_hash(d_seed[0] ^ pcg_hash(p.inner));
    let global = d_seed[1] * p.len + i;
    let u1 = (f32(pcg_hash((2u * global) ^ key) >> 8u) + 0.5) / 16777216.0;
    let u2 = f32(pcg_hash((2u * global + 1u) ^ key) >> 8u) / 16777216.0;
    out[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

fn normal_cdf(z: f32) -> f32 { return 0.5 * (1.0 + erf_approx(z * SQRT1_2)); }
fn normal_pdf(z: f32) -> f32 { return INV_SQRT_2PI * exp(-0.5 * z * z); }

// Smooth load: one invocation per token row of E = inner experts, k = channels.
@group(0) @binding(1) var<storage, read> ml_h: array<f32>;
@group(0) @binding(2) var<storage, read> ml_noisy: array<f32>;
@group(0) @binding(3) var<storage, read> ml_sigma: array<f32>;
@group(0) @binding(4) var<storage, read_write> ml_p: array<f32>;

// Indices of the k-th and (k+1)-th largest of a row's noisy logits (ties to the lower index),
// packed as kth | next << 16.
fn kth_pair(row: ptr<function, array<f32, 32>>) -> u32 {
    var chosen = 0u;
    var kth = 0u;
    var next = 0u;
    for (var pick = 0u; pick <= p.channels; pick++) {
        var best = p.inner;
        for (var j = 0u; j < p.inner; j++) {
            let free = (chosen & (1u << j)) == 0u;
            if (free && (best == p.inner || (*row)[j] > (*row)[best])) { best = j; }
        }
        chosen |= 1u << best;
        if (pick + 1u == p.channels) { kth = best; }
        if (pick == p.channels) { next = best; }
    }
    return kth | (next << 16u);
}

@compute @workgroup_size(WG_SIZE)
fn moe_load_prob(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.len) { return; }
    let base = r * p.inner;
    var row: array<f32, 32>;
    for (var j = 0u; j < p.inner; j++) { row[j] = ml_noisy[base + j]; }
    let pair = kth_pair(&row);
    let kth = row[pair & 0xffffu];
    let next = row[pair >> 16u];
    for (var j = 0u; j < p.inner; j++) {
        let i = base + j;
        let theta = select(kth, next, ml_noisy[i] > next);
        ml_p[i] = normal_cdf((ml_h[i] - theta) / ml_sigma[i]);
    }
}

@group(0) @binding(1) var<storage, read> mg_h: array<f32>;
@group(0) @binding(2) var<storage, read> mg_noisy: array<f32>;
@group(0) @binding(3) var<storage, read> mg_sigma: array<f32>;
@group(0) @binding(4) var<storage, read> mg_dp: array<f32>;
@group(0) @binding(5) var<storage, read_write> mg_dh: array<f32>;
@group(0) @binding(6) var<storage, read_write> mg_dnoisy: array<f32>;
@group(0) @binding(7) var<storage, read_write> mg_dsigma: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn moe_load_prob_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.len) { return; }
    let base = r * p.inner;
    var row: array<f32, 32>;
    for (var j = 0u; j < p.inner; j++) { row[j] = mg_noisy[base + j]; }
    let pair = kth_pair(&row);
    let kth_i = pair & 0xffffu;
    let next_i = pair >> 16u;
    let next = mg_noisy[base + next_i];
    for (var j = 0u; j < p.inner; j++) { mg_dnoisy[base + j] = 0.0; }
    for (var j = 0u; j < p.inner; j++) {
        let i = base + j;
        let t = select(kth_i, next_i, mg_noisy[i] > next);
        let z = (mg_h[i] - mg_noisy[base + t]) / mg_sigma[i];
        let g = mg_dp[i] * normal_pdf(z) / mg_sigma[i];
        mg_dh[i] = g;
        mg_dsigma[i] = -g * z;
        mg_dnoisy[base + t] -= g;
    }
}

// cv² of a = v [len] (unbiased variance; 0 for one element), into out[0]; one invocation.
@compute @workgroup_size(1)
fn cv_squared() {
    if (p.len < 2u) { out[0] = 0.0; return; }
    var m = 0.0;
    for (var i = 0u; i < p.len; i++) { m += a[i]; }
    m /= f32(p.len);
    var v = 0.0;
    for (var i = 0u; i < p.len; i++) { v += (a[i] - m) * (a[i] - m); }
    out[0] = v / f32(p.len - 1u) / (m * m + 1e-10);
}

// (a = v, b = dy [1]) -> out = dv; one invocation.
@compute @workgroup_size(1)
fn cv_squared_grad() {
    if (p.len < 2u) {
        for (var i = 0u; i < p.len; i++) { out[i] = 0.0; }
        return;
    }
    let n = f32(p.len);
    var m = 0.0;
    for (var i = 0u; i < p.len; i++) { m += a[i]; }
    m /= n;
    var v = 0.0;
    for (var i = 0u; i < p.len; i++) { v += (a[i] - m) * (a[i] - m); }
    v /= n - 1.0;
    let d = m * m + 1e-10;
    for (var i = 0u; i < p.len; i++) {
        out[i] = b[0] * (2.0 * (a[i] - m) / (n - 1.0) / d - v * (2.0 * m / n) / (d * d));
    }
}
