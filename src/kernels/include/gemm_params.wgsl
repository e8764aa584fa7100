//@include mul_precision
// The GEMM kernels' parameters, bindings and store (matmul.wgsl, matmul_tiled.wgsl,
// matmul_subgroup.wgsl).
//
// lda/ldb: distance between consecutive rows of A and B as stored. Split-K: batch b covers
// k in [b*k, min((b+1)*k, k_total)) and writes its partial product to batch b of C.
struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_batch_stride: u32, b_batch_stride: u32, c_batch_stride: u32, tiles_n: u32,
    a_offset: u32, b_offset: u32, c_offset: u32, k_total: u32,
    lda: u32, ldb: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<BElem>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

// A is stored K x M (op(A) = A^T) when TRANS_A; B is stored N x K when TRANS_B.
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override ACCUMULATE: bool = false;

//@include grid

// Writes one element of C if its column is in range.
fn put(row_off: u32, col: u32, v: f32) {
    if (col < p.n) {
        if (ACCUMULATE) { c[row_off + col] += v; } else { c[row_off + col] = v; }
    }
}
