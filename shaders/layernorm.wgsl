// LayerNorm over the last axis of x viewed as [rows, d] (BERT: eps 1e-12), and the embedding
// gather with its gradient. One invocation per row; two passes for the variance.

struct Params { rows: u32, d: u32, eps: f32, vocab: u32 }

@group(0) @binding(0) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;
//@include index

// ---- forward: (x, gamma, beta) -> (y, mean, inv_std) ----
@group(0) @binding(1) var<storage, read> f_x: array<f32>;
@group(0) @binding(2) var<storage, read> f_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> f_beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> f_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> f_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> f_inv_std: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.rows) { return; }
    let base = r * p.d;
    var s = 0.0;
    for (var j = 0u; j < p.d; j++) { s += f_x[base + j]; }
    let mean = s / f32(p.d);
    var q = 0.0;
    for (var j = 0u; j < p.d; j++) { let t = f_x[base + j] - mean; q += t * t; }
    let inv_std = inverseSqrt(q / f32(p.d) + p.eps);
    for (var j = 0u; j < p.d; j++) {
        f_y[base + j] = (f_x[base + j] - mean) * inv_std * f_gamma[j] + f_beta[j];
    }
    f_mean[r] = mean;
    f_inv_std[r] = inv_std;
}

// ---- backward, per row: dx = inv_std * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma ----
@group(0) @binding(1) var<storage, read> b_x: array<f32>;
@group(0) @binding(2) var<storage, read> b_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> b_mean: array<f32>;
@group(0) @binding(4) var<storage, read> b_inv_std: array<f32>;
@group(0) @binding(5) var<storage, read> b_dy: array<f32>;
@group(0) @binding(6) var<storage, read_write> b_dx: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn grad_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.rows) { return; }
    let base = r * p.d;
    let mean = b_mean[r];
    let inv_std = b_inv_std[r];
    var sg = 0.0;
    var sgx = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let g = b_dy[base + j] * b_gamma[j];
        sg += g;
        sgx += g * (b_x[base + j] - mean) * inv_std;
    }
    let n = f32(p.d);
    for (var j = 0u; j < p.d; j++) {
        let g = b_dy[base + j] * b_gamma[j];
        let xhat = (b_x[base + j] - mean) * inv_std;
        b_dx[base + j] = inv_std * (g - sg / n - xhat * sgx / n);
    }
}

// ---- backward, per column: dgamma = sum_rows dy * xhat, dbeta = sum_rows dy ----
@group(0) @binding(1) var<storage, read> c_x: array<f32>;
@group(0) @binding(2) var<storage, read> c_mean: array<f32>;
@group(0) @binding(3) var<storage, read> c_inv_std: array<f32>;
@group(0) @binding(4) var<storage, read> c_dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> c_dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> c_dbeta: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn grad_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = index(wg, nwg, lid);
    if (j >= p.d) { return; }
    var sg = 0.0;
    var sb = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let dy = c_dy[r * p.d + j];
        sb += dy;
        sg += dy * (c_x[r * p.d + j] - c_mean[r]) * c_inv_std[r];
    }
    c_dgamma[j] = sg;
    c_dbeta[j] = sb;
}

// ---- embedding gather: (table [vocab, d], ids [rows]) -> out [rows, d]; ids >= vocab give 0 ----
override GATHER_RUN: u32 = 1u;
@group(0) @binding(1) var<storage, read> e_table: array<f32>;
@group(0) @binding(2) var<storage, read> e_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> e_out: array<f32>;

// One invocation per GATHER_RUN consecutive elements of a row (d is a multiple of it): one
// integer division per run instead of per element (divisions are slow on CPU adapters).
@compute @workgroup_size(WG_SIZE)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid) * GATHER_RUN;
    if (i >= p.rows * p.d) { return; }
    let row = i / p.d;
    let id = e_ids[row];
    let ok = id < p.vocab;
    let src = select(0u, id * p.d + i - row * p.d, ok);
    for (var r = 0u; r < GATHER_RUN; r++) {
        e_out[i + r] = select(0.0, e_table[src + r], ok);
    }
}

// ---- embedding gradient, deterministic without atomics: `chain` links each token to the next
// token with the same id (and flags tokens that are not their id's first), `zero_table` clears
// the gradient, and in `scatter_chain` the first token of each id sums its chain per column, in
// token order. Work O(T² + V·D + T·D) instead of a scan of all tokens per table row.
const NONE: u32 = 0x7fffffffu;
const LATER: u32 = 0x80000000u;

@group(0) @binding(1) var<storage, read> c_ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> c_next: array<u32>;

@compute @workgroup_size(WG_SIZE)
fn chain(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = index(wg, nwg, lid);
    if (t >= p.rows) { return; }
    let id = c_ids[t];
    var next = NONE;
    for (var u = t + 1u; u < p.rows; u++) {
        if (c_ids[u] == id) { next = u; break; }
    }
    var later = 0u;
    for (var u = 0u; u < t; u++) {
        if (c_ids[u] == id) { later = LATER; break; }
    }
    c_next[t] = next | later;
}

@group(0) @binding(1) var<storage, read_write> z_table: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn zero_table(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.vocab * p.d) { return; }
    z_table[i] = 0.0;
}

@group(0) @binding(1) var<storage, read> s_dy: array<f32>;
@group(0) @binding(2) var<storage, read> s_ids: array<u32>;
@group(0) @binding(3) var<storage, read> s_next: array<u32>;
@group(0) @binding(4) var<storage, read_write> s_dtable: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn scatter_chain(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.rows * p.d) { return; }
    let t = i / p.d;
    let j = i % p.d;
    let id = s_ids[t];
    if ((s_next[t] & LATER) != 0u || id >= p.vocab) { return; }
    var acc = 0.0;
    var u = t;
    loop {
        acc += s_dy[u * p.d + j];
        let next = s_next[u] & NONE;
        if (next == NONE) { break; }
        u = next;
    }
    s_dtable[id * p.d + j] = acc;
}
