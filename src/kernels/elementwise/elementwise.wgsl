// Elementwise ops, one invocation per element. Each entry binds only what it uses; the
// activation is chosen by the override constant ACT (include/activation.wgsl).

struct Params { len: u32, inner: u32, channels: u32, scale: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

//@include activation

const WG_SIZE: u32 = 256u;
//@include index

//@include hash

// Inverted dropout: a = x, d_seed = [seed, rank], inner = salt, channels = keep threshold on
// the hash, scale = 1/(1 − p). Rank r's elements are r·len … of the global batch's tensor, so
// N data-parallel ranks draw the mask one rank draws for their whole batch.
@group(0) @binding(2) var<storage, read> d_seed: array<u32>;

@compute @workgroup_size(WG_SIZE)
fn dropout(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.len) { return; }
    let key = pcg_hash(d_seed[0] ^ pcg_hash(p.inner));
    let global = d_seed[1] * p.len + i;
    out[i] = select(0.0, a[i] * p.scale, pcg_hash(global ^ key) >= p.channels);
}

@compute @workgroup_size(WG_SIZE)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] = act(a[i]); }
}

// a = x, b = dy
@compute @workgroup_size(WG_SIZE)
fn unary_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] = b[i] * act_grad(a[i]); }
}

// `unary` and `unary_grad` for tensors of whole vec4s (the plan picks them then): `a4`, `b4`
// and `out4` alias bindings 1-3, and each invocation takes four elements, which lavapipe loads
// and stores in about the time of one (docs/architecture.md, "Kernel assembly").
@group(0) @binding(1) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

@compute @workgroup_size(WG_SIZE)
fn unary4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len / 4u) { out4[i] = act4(a4[i]); }
}

@compute @workgroup_size(WG_SIZE)
fn unary_grad4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len / 4u) { out4[i] = b4[i] * act_grad4(a4[i]); }
}

@compute @workgroup_size(WG_SIZE)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] = p.scale * a[i]; }
}

// a = x [outer, channels, inner], b = bias [channels]
@compute @workgroup_size(WG_SIZE)
fn bias_add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] = a[i] + b[(i / p.inner) % p.channels]; }
}

// out += a (in place: an accumulator, e.g. IMP's mask-gradient sum over batches)
@compute @workgroup_size(WG_SIZE)
fn accumulate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.len) { out[i] += a[i]; }
}
