// Batched GEMM, GPU-class variant of matmul.wgsl's `main` (plain GEMMs: no grouping; split-K
// through the batch parameters as there). C[b] = op(A[b]) * op(B[b]) (or += with ACCUMULATE).
//
// The workgroup stages a (TM*WY) x KB tile of op(A) and a KB x (TN*WX) tile of op(B) in
// workgroup memory, then every invocation multiplies its TM x TN block out of it, so each element of A and B is read from global
// memory once per workgroup instead of once per invocation. Same Params, the same output
// mapping as `main`. Loads are coalesced for either storage order (the index order follows
// TRANS_A / TRANS_B); k past the end loads 0. Every invocation reaches the barriers (rows past
// the end only skip their stores). Workgroup memory, read back as vec4s: workgroup_tiles.wgsl.
//@include gemm_params
//@include workgroup_tiles

@compute @workgroup_size(${WX}, ${WY}, 1)
fn tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let tile = group_index(wg, nwg);
    let tiles_per_batch = p.tiles_n * ((p.m + TILE_M - 1u) / TILE_M);
    let bidx = tile / tiles_per_batch;
    if (bidx >= p.batch) { return; }
    let tile_row = ((tile % tiles_per_batch) / p.tiles_n) * TILE_M;
    let tile_col = (tile % p.tiles_n) * TILE_N;
    let row0 = tile_row + lid.y * ${TM}u;
    let col0 = tile_col + lid.x;
    let a_base = p.a_offset + bidx * p.a_batch_stride;
    let b_base = p.b_offset + bidx * p.b_batch_stride;
//@include gemm_strides
    let k_len = min(p.k, p.k_total - min(p.k_total, bidx * p.k));
//@include gemm_acc
    for (var k0 = 0u; k0 < k_len; k0 += KB) {
        // Stage the tiles: element e of a tile is (row or column, k) in the order in which
        // the matrix is stored, so neighbouring invocations read neighbouring addresses.
        for (var e = tid; e < TILE_M * KB; e += ${WX*WY}u) {
            let r = select(e / KB, e % TILE_M, TRANS_A);
            let kk = select(e % KB, e / TILE_M, TRANS_A);
            let src = a_base + min(tile_row + r, p.m - 1u) * a_row + (k0 + kk) * a_step;
            stage_a(kk, r, Mul(select(0.0, a[src], k0 + kk < k_len)));
        }
        for (var e = tid; e < TILE_N * KB; e += ${WX*WY}u) {
            let cc = select(e % TILE_N, e / KB, TRANS_B);
            let kk = select(e / TILE_N, e % KB, TRANS_B);
            let src = b_base + min(tile_col + cc, p.n - 1u) * b_col + (k0 + kk) * b_step;
            stage_b(kk, cc, Mul(select(0.0, b[src], k0 + kk < k_len)));
        }
        workgroupBarrier();
//@include workgroup_tile_mul
//@for h in 0..F16
//@include mul_flush
//@end
        workgroupBarrier();
    }

    let c_base = p.c_offset + bidx * p.c_batch_stride;
    let m = p.m;
//@include gemm_store
}
