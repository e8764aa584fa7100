// Binary elementwise ops with NumPy-style broadcasting of the second operand, and SumTo, the
// reduction that is their gradient. Shapes arrive folded (adjacent axes with the same
// broadcast status merged, rank ≤ 8): `d` holds the full shape, `m` is 1 on the axes the small
// operand has and 0 on the axes it is broadcast along.

struct Params {
    len: u32, rank: u32, reduced: u32, chunks: u32,
    d0: vec4<u32>, d1: vec4<u32>,
    m0: vec4<u32>, m1: vec4<u32>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

override OP: u32 = 0u;          // 0 add, 1 mul
override BROADCAST: bool = true; // false: both operands have the full shape

fn dim(k: u32) -> u32 { if (k < 4u) { return p.d0[k]; } return p.d1[k - 4u]; }
fn kept(k: u32) -> bool { if (k < 4u) { return p.m0[k] != 0u; } return p.m1[k - 4u] != 0u; }

// Index into the small operand of full-shape element i.
fn small_index(i: u32) -> u32 {
    var rem = i;
    var idx = 0u;
    var stride = 1u;
    for (var k = p.rank; k > 0u; k--) {
        let d = dim(k - 1u);
        let c = rem % d;
        rem /= d;
        if (kept(k - 1u)) { idx += c * stride; stride *= d; }
    }
    return idx;
}

const WG_SIZE: u32 = 256u;
//@include index

@compute @workgroup_size(WG_SIZE)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.len) { return; }
    var j = i;
    if (BROADCAST) { j = small_index(i); }
    let x = a[i];
    let y = b[j];
    if (OP == 1u) { out[i] = x * y; } else { out[i] = x + y; }
}

// `binary` four elements at a time, where the shapes allow (`broadcast::plan_binary`): no
// broadcast, or the innermost folded axis kept and a multiple of 4, so four consecutive
// elements of the output meet four consecutive ones of each operand. `a4`, `b4` and `out4`
// alias bindings 1 to 3: lavapipe loads or stores a vec4 in about the time of one f32 (the
// residual adds and attention masks of a MiniLM-L6 training step: 100 → 39 ms).
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(WG_SIZE)
fn binary4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = index(wg, nwg, lid);
    if (q >= p.len / 4u) { return; }
    var j = q;
    if (BROADCAST) { j = small_index(4u * q) / 4u; }
    let x = a4[q];
    let y = b4[j];
    if (OP == 1u) { out4[q] = x * y; } else { out4[q] = x + y; }
}

// `binary4` where the innermost folded axis is broadcast instead, a multiple of 4 long (a
// per-channel value added to or multiplying each plane: DY-Conv's attention branch adds its
// pooled gradient back over every plane): four consecutive outputs share one element of `b`,
// read once. Four elements per invocation where `binary` took one, locating each with the
// divisions of `small_index` (lavapipe: 5.3 ms for a 32×16×28×28 add).
@compute @workgroup_size(WG_SIZE)
fn binary4_splat(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = index(wg, nwg, lid);
    if (q >= p.len / 4u) { return; }
    let x = a4[q];
    let y = vec4<f32>(b[small_index(4u * q)]);
    if (OP == 1u) { out4[q] = x * y; } else { out4[q] = x + y; }
}

// Full-shape index of the t-th element (over the broadcast axes) that maps to small element j.
fn full_index(j: u32, t: u32) -> u32 {
    var rj = j;
    var rt = t;
    var idx = 0u;
    var stride = 1u;
    for (var k = p.rank; k > 0u; k--) {
        let d = dim(k - 1u);
        var c = 0u;
        if (kept(k - 1u)) { c = rj % d; rj /= d; } else { c = rt % d; rt /= d; }
        idx += c * stride;
        stride *= d;
    }
    return idx;
}

// out[c * len + j] = sum of a over chunk c of the full-shape elements that broadcast from
// small element j (`reduced` = product of the broadcast axes, cut into `chunks` equal runs);
// `len` = number of small elements. With one chunk, out is the result itself.
@compute @workgroup_size(64)
fn sum_to(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = group_index(wg, nwg) * 64u + lid.x;
    if (i >= p.len * p.chunks) { return; }
    let j = i % p.len;
    let c = i / p.len;
    let per = (p.reduced + p.chunks - 1u) / p.chunks;
    let t1 = min(p.reduced, (c + 1u) * per);
    var s = 0.0;
    for (var t = c * per; t < t1; t++) { s += a[full_index(j, t)]; }
    out[i] = s;
}

// ---- permute: out = x.permute(perm), rank ≤ 8. d = shape of x; m holds, for every axis of the
// output in order, the input axis it takes (perm). ----
fn in_stride(axis: u32) -> u32 {
    var s = 1u;
    for (var k = p.rank; k > axis + 1u; k--) { s *= dim(k - 1u); }
    return s;
}

fn perm_axis(k: u32) -> u32 { if (k < 4u) { return p.m0[k]; } return p.m1[k - 4u]; }

// Each invocation copies a run of up to PERMUTE_RUN elements along the output's innermost
// axis (the last run of a row shorter), so the divisions that locate its first element are
// paid once per run: MiniLM's head permutes took 7.9 % of a lavapipe training step with one
// invocation per element.
const PERMUTE_RUN: u32 = 8u;

@compute @workgroup_size(WG_SIZE)
fn permute(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let inner_axis = perm_axis(p.rank - 1u);
    let inner = dim(inner_axis);
    let runs = (inner + PERMUTE_RUN - 1u) / PERMUTE_RUN;
    let id = index(wg, nwg, lid);
    let row = id / runs;
    let j0 = (id - row * runs) * PERMUTE_RUN;
    let i = row * inner + j0;
    if (i >= p.len) { return; }
    // Decompose i over the output shape (input dims in perm order), innermost last.
    var rem = i;
    var src = 0u;
    for (var k = p.rank; k > 0u; k--) {
        let axis = perm_axis(k - 1u);
        let n = dim(axis);
        src += (rem % n) * in_stride(axis);
        rem /= n;
    }
    let step = in_stride(inner_axis);
    for (var r = 0u; r < min(PERMUTE_RUN, inner - j0); r++) {
        out[i + r] = a[src + r * step];
    }
}
