// Batched GEMM: C[b] = op(A[b]) * op(B[b])   (or C[b] += ... with ACCUMULATE)
// op(A) is M x K, op(B) is K x N, C is M x N row-major; batch strides may be 0 (broadcast).
//
// Template (see src/gpu/template.rs): each invocation owns TM rows x TN columns of C (columns
// strided by WX so neighbouring invocations read neighbouring addresses); a workgroup of
// WX x WY invocations owns a (TM*WY) x (TN*WX) tile. No shared memory (devices with subgroups,
// lavapipe among them, may take matmul_subgroup.wgsl instead and GPUs matmul_tiled.wgsl; see
// src/gpu/tuning.rs); grouped GEMMs run here, or in matmul_subgroup.wgsl where plain GEMMs do.
// The block is written out as named registers: on lavapipe loads cost far more than FMAs, so a
// large block (16x32: 48 loads per 512 FMAs) runs ~2x faster than 8x8; GPUs get a small block.
// Loads clamp out-of-range rows/columns (no branches in the k loop); stores are masked.

//@include gemm_params

//@include gemm_groups

@compute @workgroup_size(${WX}, ${WY}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
//@include gemm_group_tile
    if (bidx >= p.batch) { return; }
    let row0 = row_tile * ${TM*WY}u + lid.y * ${TM}u;
    let col0 = (tile % p.tiles_n) * ${TN*WX}u + lid.x;
//@include gemm_group_range
    if (row0 >= m) { return; }

//@for i in 0..TM
    let ao${i} = a_base + min(row0 + ${i}u, m - 1u) * a_row;
//@end
//@for j in 0..TN
    let bo${j} = b_base + min(col0 + ${WX*j}u, p.n - 1u) * b_col;
//@end
//@include gemm_acc

    for (var kk = 0u; kk < k_len; kk++) {
        let ka = kk * a_step;
        let kb = kk * b_step;
//@for v in 0..TN/4
        let b${v} = vec4<Mul>(vec4<BElem>(b[bo${4*v} + kb], b[bo${4*v+1} + kb], b[bo${4*v+2} + kb], b[bo${4*v+3} + kb]));
//@end
//@for i in 0..TM
        let a${i} = vec4<Mul>(Mul(a[ao${i} + ka]));
//@for v in 0..TN/4
        part${i}_${v} = fma(a${i}, b${v}, part${i}_${v});
//@end
//@end
//@for h in 0..F16
        if ((kk & 7u) == 7u) {
//@include mul_flush
        }
//@end
    }

    let c_base = p.c_offset + bidx * p.c_batch_stride + c_row0 * p.n;
//@include gemm_store
}

