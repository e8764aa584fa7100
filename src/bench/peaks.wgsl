// Probes of an adapter's ceilings (src/bench/peaks.rs; docs/benchmarks.md, "Peaks"): f32 FMA
// throughput with independent chains, streaming bandwidth with a vec4 copy, and the cost of
// one small dependent dispatch.

//@include grid

// x: FMA iterations per invocation (fma_chains); x: vec4 elements to copy (copy, step).
@group(0) @binding(0) var<uniform> params: vec4<u32>;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

// Four independent chains of vec4 FMAs per invocation (16 FMAs in flight), so throughput, not
// latency, bounds it; eight steps of each chain per iteration, so the loop's counter, compare
// and branch (and naga's loop bound) take under 5 % of the issue slots: with one step, the
// H200 measured 35.7 TFLOP/s, below the 51 of cuBLAS's f32 GEMM on it. The result is stored
// so nothing is optimised away.
@compute @workgroup_size(64)
fn fma_chains(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = group_index(wg, nwg) * 64u + li;
    let seed = src[i % arrayLength(&src)];
    var a = seed;
    var b = seed + vec4<f32>(0.5);
    var c = seed + vec4<f32>(0.25);
    var d = seed + vec4<f32>(0.125);
    let m = vec4<f32>(0.9999);
    let k = vec4<f32>(1e-4);
    for (var it = 0u; it < params.x; it++) {
//@for s in 0..8
        a = fma(a, m, k);
        b = fma(b, m, k);
        c = fma(c, m, k);
        d = fma(d, m, k);
//@end
    }
    dst[i] = a + b + c + d;
}

// One vec4 read and one written per invocation.
@compute @workgroup_size(64)
fn copy(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = group_index(wg, nwg) * 64u + li;
    if (i < params.x) {
        dst[i] = src[i];
    }
}

// One workgroup adding x vec4s of src into dst. Back to back, each dispatch must wait for the
// one before (both write dst), so one repetition costs what a graph pays per small kernel: the
// launch and the barrier, with almost no work.
@compute @workgroup_size(64)
fn step(@builtin(local_invocation_index) li: u32) {
    if (li < params.x) {
        dst[li] = dst[li] + src[li];
    }
}
