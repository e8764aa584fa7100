// Batched GEMM, GPU-class variant of matmul.wgsl's `main` (plain GEMMs: no grouping; split-K
// through the batch parameters as there). C[b] = op(A[b]) * op(B[b]) (or += with ACCUMULATE).
//
// The workgroup stages a (TM*WY) x KB tile of op(A) and a KB x (TN*WX) tile of op(B) in
// workgroup memory, then every invocation multiplies its TM x TN block out of it, so each
// element of A and B is read from global memory once per workgroup instead of once per
// invocation; the next chunk's elements are loaded into registers meanwhile. Same Params, the
// same output mapping as `main`. Loads are coalesced for either storage order (the index order
// follows TRANS_A / TRANS_B); k past the end loads 0. Every invocation reaches the barriers
// (rows past the end only skip their stores). Workgroup memory, read back as vec4s:
// workgroup_tiles.wgsl.
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
    // The tile elements this invocation stages: element tid + j·WX·WY of each tile, (row or
    // column, k) in the order the matrix is stored, so neighbouring invocations read
    // neighbouring addresses; their values for the next chunk are loaded while the current one
    // is multiplied, so the loads' latency overlaps the arithmetic (TM·16/WX and TN·16/WY of
    // them: the plan's blockings divide their tiles evenly).
//@for j in 0..TM*16/WX
    let ea${j} = tid + ${j*WX*WY}u;
    let ra${j} = select(ea${j} / KB, ea${j} % TILE_M, TRANS_A);
    let ka${j} = select(ea${j} % KB, ea${j} / TILE_M, TRANS_A);
    let sa${j} = a_base + min(tile_row + ra${j}, p.m - 1u) * a_row + ka${j} * a_step;
    var va${j} = Mul(select(0.0, a[sa${j}], ka${j} < k_len));
//@end
//@for j in 0..TN*16/WY
    let eb${j} = tid + ${j*WX*WY}u;
    let cb${j} = select(eb${j} % TILE_N, eb${j} / KB, TRANS_B);
    let kb${j} = select(eb${j} / TILE_N, eb${j} % KB, TRANS_B);
    let sb${j} = b_base + min(tile_col + cb${j}, p.n - 1u) * b_col + kb${j} * b_step;
    var vb${j} = Mul(select(0.0, b[sb${j}], kb${j} < k_len));
//@end
    for (var k0 = 0u; k0 < k_len; k0 += KB) {
//@for j in 0..TM*16/WX
        stage_a(ka${j}, ra${j}, va${j});
//@end
//@for j in 0..TN*16/WY
        stage_b(kb${j}, cb${j}, vb${j});
//@end
        workgroupBarrier();
        let k1 = k0 + KB;
        if (k1 < k_len) {
//@for j in 0..TM*16/WX
            va${j} = Mul(select(0.0, a[sa${j} + k1 * a_step], k1 + ka${j} < k_len));
//@end
//@for j in 0..TN*16/WY
            vb${j} = Mul(select(0.0, b[sb${j} + k1 * b_step], k1 + kb${j} < k_len));
//@end
        }
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
