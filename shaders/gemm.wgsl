// Batched GEMM: C[b] = op(A[b]) * op(B[b])   (or C[b] += ... with ACCUMULATE)
// op(A) is M x K, op(B) is K x N, C is M x N row-major; batch strides may be 0 (broadcast).
//
// Register-blocked for lavapipe and real GPUs alike: an invocation owns 8 rows x 8 columns of C
// (columns strided by 8 so neighbouring invocations touch neighbouring addresses), a workgroup
// of 8x8 invocations owns a 64x64 tile. No shared memory: on lavapipe barrier-synchronised
// tiling is slower than naive. Every register array is indexed only with constants after loop
// unrolling; a single dynamic index would demote the accumulators to scratch memory (3x slower).
// Loads clamp out-of-range rows/columns (no branches in the k loop); stores are masked.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_batch_stride: u32, b_batch_stride: u32, c_batch_stride: u32, tiles_n: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// A is stored K x M (op(A) = A^T) when TRANS_A; B is stored N x K when TRANS_B.
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;

// Writes one element of C if its column is in range.
fn put(row_off: u32, col: u32, v: f32) {
    if (col < p.n) {
        if (ACCUMULATE) { c[row_off + col] += v; } else { c[row_off + col] = v; }
    }
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = wg.x + wg.y * nwg.x;
    let tiles_per_batch = p.tiles_n * ((p.m + 63u) / 64u);
    let bidx = tile / tiles_per_batch;
    if (bidx >= p.batch) { return; }
    let t = tile % tiles_per_batch;
    let row0 = (t / p.tiles_n) * 64u + lid.y * 8u;
    let col0 = (t % p.tiles_n) * 64u + lid.x;
    let a_base = bidx * p.a_batch_stride;
    let b_base = bidx * p.b_batch_stride;

    var a_off: array<u32, 8>;
    var b_off: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        let r = min(row0 + i, p.m - 1u);
        let cc = min(col0 + 8u * i, p.n - 1u);
        if (TRANS_A) { a_off[i] = a_base + r; } else { a_off[i] = a_base + r * p.k; }
        if (TRANS_B) { b_off[i] = b_base + cc * p.k; } else { b_off[i] = b_base + cc; }
    }
    let a_step = select(1u, p.m, TRANS_A);
    let b_step = select(p.n, 1u, TRANS_B);

    var acc: array<vec4<f32>, 16>;
    for (var kk = 0u; kk < p.k; kk++) {
        let ka = kk * a_step;
        let kb = kk * b_step;
        let b0 = vec4<f32>(b[b_off[0] + kb], b[b_off[1] + kb], b[b_off[2] + kb], b[b_off[3] + kb]);
        let b1 = vec4<f32>(b[b_off[4] + kb], b[b_off[5] + kb], b[b_off[6] + kb], b[b_off[7] + kb]);
        for (var i = 0u; i < 8u; i++) {
            let av = vec4<f32>(a[a_off[i] + ka]);
            acc[2u * i] = fma(av, b0, acc[2u * i]);
            acc[2u * i + 1u] = fma(av, b1, acc[2u * i + 1u]);
        }
    }

    let c_base = bidx * p.c_batch_stride;
    for (var i = 0u; i < 8u; i++) {
        let r = row0 + i;
        if (r < p.m) {
            let o = c_base + r * p.n;
            let lo = acc[2u * i];
            let hi = acc[2u * i + 1u];
            put(o, col0, lo.x);
            put(o, col0 + 8u, lo.y);
            put(o, col0 + 16u, lo.z);
            put(o, col0 + 24u, lo.w);
            put(o, col0 + 32u, hi.x);
            put(o, col0 + 40u, hi.y);
            put(o, col0 + 48u, hi.z);
            put(o, col0 + 56u, hi.w);
        }
    }
}
