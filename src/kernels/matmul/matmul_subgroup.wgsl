// Batched GEMM, subgroup variant of matmul.wgsl's `main` (split-K through the batch
// parameters as there; grouped GEMMs, MoE experts, as there with GROUP_ROWS or GROUP_K).
// C[b] = op(A[b]) * op(B[b]) (or += with ACCUMULATE).
// Built only on adapters with Features::SUBGROUP (docs/architecture.md, "GEMM kernels and
// autotune").
//
// The same TM x TN register block per invocation as `main`, but op(A) is not read by every
// invocation of a row: the WX invocations that share rows (a "row group") each read one k of a
// chunk of WX (for row-major A, WX neighbouring addresses), and the chunk is passed around the
// row group by subgroupShuffle, so A is read from memory once per row group instead of WX times.
//
// Invocations are placed by their subgroup (in a 1-D workgroup of WX*WY, as naga allows
// subgroup ids only there), not by local_invocation_id: flat = subgroup_id *
// subgroup_size + subgroup_invocation_id, x = flat % WX, y = flat / WX. As the host keeps WX a
// divisor of every subgroup size the adapter can pick, and the workgroup a multiple of the
// largest, a row group always lies within one subgroup, whatever order the driver gives its
// invocations. No invocation returns before the shuffles (rows past the end clamp their loads
// and mask their stores), and every bound the shuffles sit in is uniform per workgroup.
//
// VEC4 = 1 (row-major B; N and the offsets of B and C whole vec4s): each invocation's TN
// columns are consecutive instead of WX apart, so it reads B and writes C in vec4s through
// `b4` and `c4`, aliases of bindings 2 and 3. lavapipe runs a load or store whose address
// differs between lanes as a loop over the lanes, and a vec4 costs it about what one f32 does
// (docs/architecture.md, "GEMM kernels and autotune").
//@include gemm_params

@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c4: array<vec4<f32>>;

//@include gemm_groups

@compute @workgroup_size(${WX*WY}, 1, 1)
fn subgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
            @builtin(subgroup_invocation_id) lane: u32) {
//@include gemm_group_tile
    if (bidx >= p.batch) { return; }
    let flat = sg_id * sg_size + lane;
    let x = flat % ${WX}u;
    let group_lane0 = lane - x;
    let row0 = row_tile * ${TM*WY}u + (flat / ${WX}u) * ${TM}u;
    let col0 = (tile % p.tiles_n) * ${TN*WX}u + x * ${1 + (TN-1)*VEC4}u;
//@include gemm_group_range
    // Whole workgroups past their group's rows leave (uniform: the shuffles stay whole); the
    // other invocations past the end clamp their loads and mask their stores.
    if (row_tile * ${TM*WY}u >= m) { return; }

//@for i in 0..TM
    let ao${i} = a_base + min(row0 + ${i}u, m - 1u) * a_row;
//@end
//@for h in 0..1-VEC4
//@for j in 0..TN
    let bo${j} = b_base + min(col0 + ${WX*j}u, p.n - 1u) * b_col;
//@end
//@end
//@for h in 0..VEC4
    let nq = p.n / 4u;
//@for v in 0..TN/4
    let bq${v} = b_base / 4u + min(col0 / 4u + ${v}u, nq - 1u);
//@end
//@end
//@include gemm_acc

    for (var k0 = 0u; k0 < k_len; k0 += ${WX}u) {
        // This invocation's k of the chunk, for its TM rows (0 past the end of k).
        let ka = min(k0 + x, k_len - 1u) * a_step;
        let live = k0 + x < k_len;
//@for q in 0..TM/4
        let chunk${q} = select(vec4<f32>(0.0), vec4<f32>(a[ao${4*q} + ka], a[ao${4*q+1} + ka], a[ao${4*q+2} + ka], a[ao${4*q+3} + ka]), live);
//@end
        let steps = min(${WX}u, k_len - k0);
        for (var kk = 0u; kk < steps; kk++) {
//@for q in 0..TM/4
            let rows${q} = subgroupShuffle(chunk${q}, group_lane0 + kk);
//@end
//@for h in 0..1-VEC4
            let kb = (k0 + kk) * b_step;
//@for v in 0..TN/4
            let b${v} = vec4<Mul>(vec4<BElem>(b[bo${4*v} + kb], b[bo${4*v+1} + kb], b[bo${4*v+2} + kb], b[bo${4*v+3} + kb]));
//@end
//@end
//@for h in 0..VEC4
            let kq = (k0 + kk) * nq;
//@for v in 0..TN/4
            let b${v} = vec4<Mul>(b4[bq${v} + kq]);
//@end
//@end
//@for i in 0..TM
            let a${i} = vec4<Mul>(Mul(rows${i/4}[${i%4}]));
//@for v in 0..TN/4
            part${i}_${v} = fma(a${i}, b${v}, part${i}_${v});
//@end
//@end
        }
//@for h in 0..F16
//@include mul_flush
//@end
    }

    let c_base = p.c_offset + bidx * p.c_batch_stride + c_row0 * p.n;
//@for h in 0..1-VEC4
//@include gemm_store
//@end
//@for h in 0..VEC4
//@include mul_flush
//@for i in 0..TM
    if (row0 + ${i}u < m) {
        let o = (c_base + (row0 + ${i}u) * p.n) / 4u + col0 / 4u;
//@for v in 0..TN/4
        if (col0 / 4u + ${v}u < nq) {
            if (ACCUMULATE) { c4[o + ${v}u] += acc${i}_${v}; } else { c4[o + ${v}u] = acc${i}_${v}; }
        }
//@end
    }
//@end
//@end
}
