// Elementwise ops, one invocation per element. Each entry binds only what it uses; the
// activation is chosen by the override constant ACT (0 relu, 1 relu6, 2 erf-gelu, 3 sigmoid,
// 4 tanh).

struct Params { len: u32, inner: u32, channels: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override ACT: u32 = 0u;

const SQRT1_2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

// erf via Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), odd extension.
fn erf_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let r = 1.0 - poly * exp(-z * z);
    return select(r, -r, x < 0.0);
}

fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

fn act(x: f32) -> f32 {
    switch ACT {
        case 0u: { return max(x, 0.0); }
        case 1u: { return clamp(x, 0.0, 6.0); }
        case 2u: { return 0.5 * x * (1.0 + erf_approx(x * SQRT1_2)); }
        case 3u: { return sigmoid(x); }
        default: { return tanh(x); }
    }
}

// d act(x) / dx
fn act_grad(x: f32) -> f32 {
    switch ACT {
        case 0u: { return select(0.0, 1.0, x > 0.0); }
        case 1u: { return select(0.0, 1.0, x > 0.0 && x < 6.0); }
        case 2u: { return 0.5 * (1.0 + erf_approx(x * SQRT1_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x); }
        case 3u: { let s = sigmoid(x); return s * (1.0 - s); }
        default: { let t = tanh(x); return 1.0 - t * t; }
    }
}

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.x + wg.y * nwg.x) * 256u + lid.x;
}

fn pcg_hash(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

// Inverted dropout: a = x, d_seed = the seed, inner = salt, channels = keep threshold on the
// hash, scale = 1/(1 − p).
@group(0) @binding(2) var<storage, read> d_seed: array<u32>;

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.len) { return; }
    let key = pcg_hash(d_seed[0] ^ pcg_hash(p.inner));
    out[i] = select(0.0, a[i] * p.scale, pcg_hash(i ^ key) >= p.channels);
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] = act(a[i]); }
}

// a = x, b = dy
@compute @workgroup_size(256)
fn unary_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] = b[i] * act_grad(a[i]); }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] = p.scale * a[i]; }
}

// a = x [outer, channels, inner], b = bias [channels]
@compute @workgroup_size(256)
fn bias_add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] = a[i] + b[(i / p.inner) % p.channels]; }
}

// out += a (in place: an accumulator, e.g. IMP's mask-gradient sum over batches)
@compute @workgroup_size(256)
fn accumulate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] += a[i]; }
}
