// LayerNorm over the last axis of x viewed as [rows, d] (BERT: eps 1e-12). One invocation per
// row; two passes for the variance. The parameter gradient sums over the rows per column, in
// parts of `rows_per_part` rows (`layernorm::plan`).

struct Params { rows: u32, d: u32, eps: f32, rows_per_part: u32 }

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
// Invocation (part, column j) sums the part's rows into entry part·d + j of dgamma and dbeta:
// the gradients themselves where there is one part, else partial sums the plan adds up.
@group(0) @binding(1) var<storage, read> c_x: array<f32>;
@group(0) @binding(2) var<storage, read> c_mean: array<f32>;
@group(0) @binding(3) var<storage, read> c_inv_std: array<f32>;
@group(0) @binding(4) var<storage, read> c_dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> c_dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> c_dbeta: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn grad_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = index(wg, nwg, lid);
    let part = e / p.d;
    let j = e % p.d;
    let r0 = part * p.rows_per_part;
    if (r0 >= p.rows) { return; }
    var sg = 0.0;
    var sb = 0.0;
    for (var r = r0; r < min(r0 + p.rows_per_part, p.rows); r++) {
        let dy = c_dy[r * p.d + j];
        sb += dy;
        sg += dy * (c_x[r * p.d + j] - c_mean[r]) * c_inv_std[r];
    }
    c_dgamma[e] = sg;
    c_dbeta[e] = sb;
}
