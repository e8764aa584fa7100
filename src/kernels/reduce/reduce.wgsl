// Reductions and their broadcasts over a tensor viewed as [outer, r, inner].
// One invocation per output element, sequential over the reduced axis (deterministic order).

// out_offset: element offset of the output (sum_axes writes into a slice of a larger tensor).
// run: `sum_axes` sums runs of this many terms of r into partial sums [outer, runs, inner]
// (0: all of r; `reduce::bounded_sum`, within lavapipe's loop limit).
struct Params { outer: u32, r: u32, inner: u32, scale: f32, out_offset: u32, run: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG_SIZE: u32 = 64u;
//@include index

// out[o, s, i] = scale * sum_{r in run s} x[o, r, i] (one run, s = 0, unless p.run is set)
@compute @workgroup_size(WG_SIZE)
fn sum_axes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let idx = index(wg, nwg, lid);
    let run = select(p.run, p.r, p.run == 0u);
    let runs = (p.r + run - 1u) / run;
    if (idx >= p.outer * runs * p.inner) { return; }
    let os = idx / p.inner;
    let o = os / runs;
    let i = idx % p.inner;
    let first = (os % runs) * run;
    let last = min(first + run, p.r);
    // Blocked: sums of 64 terms, then their total (docs/numerics.md).
    var s = 0.0;
    for (var r0 = first; r0 < last; r0 += 64u) {
        var part = 0.0;
        for (var r = r0; r < min(r0 + 64u, last); r++) { part += x[(o * p.r + r) * p.inner + i]; }
        s += part;
    }
    out[p.out_offset + idx] = p.scale * s;
}

// Rows (inner = 1; the global pooling of every attention branch): out[o] = scale * sum_r x[o, r],
// read as vec4s through `x4`, which aliases `x`. lavapipe loads a vec4 about as fast as one
// f32, so this sums a row about twice as fast as `sum_axes` (docs/architecture.md, the
// paragraph "Reductions"). The plan uses it only where the whole tensor is a multiple of 4
// elements, so that the last vec4 lies inside the binding; a row's unaligned ends are masked.
@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;

// The elements of vec4 q that lie in [b, e).
fn row_part(q: u32, b: u32, e: u32) -> vec4<f32> {
    let i = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
    return select(vec4<f32>(0.0), x4[q], (i >= vec4<u32>(b)) & (i < vec4<u32>(e)));
}

@compute @workgroup_size(WG_SIZE)
fn sum_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let o = index(wg, nwg, lid);
    if (o >= p.outer) { return; }
    let b = o * p.r;
    let e = b + p.r;
    let first = b / 4u;
    let last = (e - 1u) / 4u;
    var ends = row_part(first, b, e);
    if (last > first) { ends += row_part(last, b, e); }
    // Blocked: the whole vec4s between the ends in sums of 16 (64 terms), then their total.
    var s = 0.0;
    var q = first + 1u;
    while (q < last) {
        let stop = min(q + 16u, last);
        var part = vec4<f32>(0.0);
        for (; q < stop; q++) { part += x4[q]; }
        s += (part.x + part.y) + (part.z + part.w);
    }
    s += (ends.x + ends.y) + (ends.z + ends.w);
    out[p.out_offset + o] = p.scale * s;
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
