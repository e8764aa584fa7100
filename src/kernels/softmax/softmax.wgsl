// Softmax over rows, cross-entropy with label smoothing (target 1-eps on the label,
// eps/(C-1) on every other class, as PAD-Net's LabelSmoothingLoss), and the mean squared
// error of regression heads. One invocation per row.

struct Params { rows: u32, cols: u32, smoothing: f32, k: u32 }

@group(0) @binding(0) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;
//@include index

// ---- softmax: x -> y ----
@group(0) @binding(1) var<storage, read> sm_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> sm_y: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var m = sm_x[base];
    for (var j = 1u; j < p.cols; j++) { m = max(m, sm_x[base + j]); }
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) { s += exp(sm_x[base + j] - m); }
    let inv = 1.0 / s;
    for (var j = 0u; j < p.cols; j++) { sm_y[base + j] = exp(sm_x[base + j] - m) * inv; }
}

// ---- MoE gates: softmax over the k largest logits of a row (ties to the lower index), 0
// elsewhere; cols ≤ 32, so the chosen set is a bit mask ----
@compute @workgroup_size(WG_SIZE)
fn topk_gates(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var chosen = 0u;
    var m = 0.0;
    for (var pick = 0u; pick < p.k; pick++) {
        var best = p.cols;
        for (var j = 0u; j < p.cols; j++) {
            let free = (chosen & (1u << j)) == 0u;
            if (free && (best == p.cols || sm_x[base + j] > sm_x[base + best])) { best = j; }
        }
        chosen |= 1u << best;
        if (pick == 0u) { m = sm_x[base + best]; }
    }
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        if ((chosen & (1u << j)) != 0u) { s += exp(sm_x[base + j] - m); }
    }
    let inv = 1.0 / s;
    for (var j = 0u; j < p.cols; j++) {
        let on = (chosen & (1u << j)) != 0u;
        sm_y[base + j] = select(0.0, exp(sm_x[base + j] - m) * inv, on);
    }
}

// ---- softmax backward: (y, dy) -> dx ----
@group(0) @binding(1) var<storage, read> sg_y: array<f32>;
@group(0) @binding(2) var<storage, read> sg_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> sg_dx: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn softmax_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var dot = 0.0;
    for (var j = 0u; j < p.cols; j++) { dot += sg_y[base + j] * sg_dy[base + j]; }
    for (var j = 0u; j < p.cols; j++) { sg_dx[base + j] = sg_y[base + j] * (sg_dy[base + j] - dot); }
}

// ---- cross-entropy forward, per row: (logits, labels) -> probs, per-row [loss, correct] ----
@group(0) @binding(1) var<storage, read> ce_logits: array<f32>;
@group(0) @binding(2) var<storage, read> ce_labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> ce_probs: array<f32>;
@group(0) @binding(4) var<storage, read_write> ce_rows: array<f32>;

fn target_prob(j: u32, label: u32) -> f32 {
    let off = p.smoothing / f32(p.cols - 1u);
    return select(off, 1.0 - p.smoothing, j == label);
}

@compute @workgroup_size(WG_SIZE)
fn ce_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    let label = min(ce_labels[r], p.cols - 1u); // labels are validated on the host
    var m = ce_logits[base];
    var arg = 0u;
    for (var j = 1u; j < p.cols; j++) {
        let v = ce_logits[base + j];
        if (v > m) { m = v; arg = j; }
    }
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) { s += exp(ce_logits[base + j] - m); }
    let lse = m + log(s);
    var loss = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        let logit = ce_logits[base + j];
        ce_probs[base + j] = exp(logit - lse);
        loss -= target_prob(j, label) * (logit - lse);
    }
    ce_rows[2u * r] = loss;
    ce_rows[2u * r + 1u] = select(0.0, 1.0, arg == label);
}

// ---- cross-entropy finish: from the rows' totals (sum loss, #correct; `softmax::plan` adds up
// `ce_forward`'s rows within the loop limit) the mean loss, and metrics += (sum loss, #correct,
// #rows); one invocation ----
@group(0) @binding(1) var<storage, read> cr_totals: array<f32>;
@group(0) @binding(2) var<storage, read_write> cr_loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> cr_metrics: array<f32>;

@compute @workgroup_size(1)
fn ce_finish() {
    cr_loss[0] = cr_totals[0] / f32(p.rows);
    cr_metrics[0] += cr_totals[0];
    cr_metrics[1] += cr_totals[1];
    cr_metrics[2] += f32(p.rows);
}

// ---- cross-entropy backward: (probs, labels, dloss) -> dlogits = (probs - q) * dloss / B ----
@group(0) @binding(1) var<storage, read> cg_probs: array<f32>;
@group(0) @binding(2) var<storage, read> cg_labels: array<u32>;
@group(0) @binding(3) var<storage, read> cg_dloss: array<f32>;
@group(0) @binding(4) var<storage, read_write> cg_dlogits: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn ce_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.rows * p.cols) { return; }
    let r = i / p.cols;
    let j = i % p.cols;
    let label = min(cg_labels[r], p.cols - 1u);
    cg_dlogits[i] = (cg_probs[i] - target_prob(j, label)) * cg_dloss[0] / f32(p.rows);
}

// ---- mean squared error: (pred [B, 1], targets [B]) -> mean loss; metrics += (Σ sq, 0, B).
// `mse_rows` squares each row's error (one invocation per row), `softmax::plan` adds them up
// within the loop limit, and `mse_finish` (one invocation) takes their total. ----
@group(0) @binding(1) var<storage, read> mse_pred: array<f32>;
@group(0) @binding(2) var<storage, read> mse_target: array<f32>;
@group(0) @binding(3) var<storage, read_write> mse_sq: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn mse_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.rows) { return; }
    let e = mse_pred[r] - mse_target[r];
    mse_sq[r] = e * e;
}

@group(0) @binding(1) var<storage, read> mf_total: array<f32>;
@group(0) @binding(2) var<storage, read_write> mf_loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> mf_metrics: array<f32>;

@compute @workgroup_size(1)
fn mse_finish() {
    mf_loss[0] = mf_total[0] / f32(p.rows);
    mf_metrics[0] += mf_total[0];
    mf_metrics[2] += f32(p.rows);
}

// ---- its gradient: dpred = 2 (pred - target) * dloss / B ----
@group(0) @binding(1) var<storage, read> mg_pred: array<f32>;
@group(0) @binding(2) var<storage, read> mg_target: array<f32>;
@group(0) @binding(3) var<storage, read> mg_dloss: array<f32>;
@group(0) @binding(4) var<storage, read_write> mg_dpred: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn mse_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = index(wg, nwg, lid);
    if (r >= p.rows) { return; }
    mg_dpred[r] = 2.0 * (mg_pred[r] - mg_target[r]) * mg_dloss[0] / f32(p.rows);
}
