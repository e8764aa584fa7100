// Optimizer steps over the whole parameter arena in one dispatch (PyTorch semantics), four
// consecutive floats per invocation: every arena slice is whole 64-float units, and a vec4
// load or store costs lavapipe about what one f32 does (it loops over the lanes of an access
// whose address differs between them), so a scalar pass was load-bound at four times the work.
// Gaps between parameters (alignment padding) hold zeros and stay zero.
// The non-finite guard (docs/architecture.md, "Runs are never lost"): a gradient or updated
// parameter that is NaN or ±Inf records the step in `first_bad` (u32 max: none so far).

struct Params {
    len: u32, nesterov: u32, step: u32, _p1: u32,
    lr: f32, momentum: f32, weight_decay: f32, beta1: f32,
    beta2: f32, eps: f32, bias_corr1: f32, bias_corr2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> first_bad: array<atomic<u32>>;

const WG_SIZE: u32 = 256u;
//@include index

// NaN and ±Inf have every exponent bit set; a bit test, so that no fast-math folds it away.
fn guard(g: vec4<f32>, updated: vec4<f32>) {
    let exp = vec4<u32>(0x7f800000u);
    if (any((bitcast<vec4<u32>>(g) & exp) == exp) || any((bitcast<vec4<u32>>(updated) & exp) == exp)) {
        atomicMin(&first_bad[0], p.step);
    }
}

// torch.optim.SGD: g += wd*p; buf = momentum*buf + g; p -= lr * (nesterov ? g + momentum*buf : buf)
@compute @workgroup_size(WG_SIZE)
fn sgd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.len / 4u) { return; }
    let g = grad[i] + p.weight_decay * param[i];
    let buf = p.momentum * m[i] + g;
    m[i] = buf;
    let step = select(buf, g + p.momentum * buf, p.nesterov != 0u);
    let updated = param[i] - p.lr * step;
    guard(g, updated);
    param[i] = updated;
}

// torch.optim.AdamW: p *= 1 - lr*wd; m, v moments; p -= lr * m_hat / (sqrt(v_hat) + eps)
@compute @workgroup_size(WG_SIZE)
fn adamw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.len / 4u) { return; }
    let g = grad[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi / p.bias_corr2) + p.eps;
    let updated = param[i] * (1.0 - p.lr * p.weight_decay) - p.lr * (mi / p.bias_corr1) / denom;
    guard(g, updated);
    param[i] = updated;
}
