// Reductions and their broadcasts over a tensor viewed as [outer, r, inner].
// One invocation per output element, sequential over the reduced axis (deterministic order).

// out_offset: element offset of the output (sum_axes writes into a slice of a larger tensor).
struct Params { outer: u32, r: u32, inner: u32, scale: f32, out_offset: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG_SIZE: u32 = 64u;
//@include index

// out[o, i] = scale * sum_r x[o, r, i]
@compute @workgroup_size(WG_SIZE)
fn sum_axes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let idx = index(wg, nwg, lid);
    if (idx >= p.outer * p.inner) { return; }
    let o = idx / p.inner;
    let i = idx % p.inner;
    // Blocked: sums of 64 terms, then their total (docs/numerics.md).
    var s = 0.0;
    for (var r0 = 0u; r0 < p.r; r0 += 64u) {
        var part = 0.0;
        for (var r = r0; r < min(r0 + 64u, p.r); r++) { part += x[(o * p.r + r) * p.inner + i]; }
        s += part;
    }
    out[p.out_offset + idx] = p.scale * s;
}

// out[o, r, i] = scale * x[o, i]
@compute @workgroup_size(WG_SIZE)
fn expand(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let idx = index(wg, nwg, lid);
    if (idx >= p.outer * p.r * p.inner) { return; }
    let i = idx % p.inner;
    let o = idx / (p.r * p.inner);
    out[idx] = p.scale * x[o * p.inner + i];
}

// Per-channel sum of x viewed as [outer = N, r = C, inner = H*W]: out[c] = sum_{n, s} x[n, c, s].
@compute @workgroup_size(WG_SIZE)
fn channel_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = index(wg, nwg, lid);
    if (c >= p.r) { return; }
    var s = 0.0;
    for (var n = 0u; n < p.outer; n++) {
        let base = (n * p.r + c) * p.inner;
        var plane = 0.0; // blocked: each sample's plane, then the batch
        for (var i = 0u; i < p.inner; i++) { plane += x[base + i]; }
        s += plane;
    }
    out[c] = p.scale * s;
}
