// The f16 copy of the parameter arena that GEMMs and convolutions multiplying in f16 read their
// weights from (src/executor/compile.rs, `HalfWeights`; docs/architecture.md, "Half
// precision"): halves[i] = a[i] rounded to f16 by the same conversion `Mul(..)` applies to
// an f32 operand (mul_precision.wgsl), so the results equal those of reading f32 weights.
// Built only on devices with SHADER_F16.
enable f16;

struct Params { len: u32, _p0: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read_write> halves: array<f16>;

const WG_SIZE: u32 = 256u;
//@include index

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { halves[i] = f16(a[i]); }
}
