// MoE dispatch plan (PADNET-SPEC §1.3): from the gates [N, E] (k nonzero per row), every
// (token, expert) pair with a nonzero gate gets a slot; slots are grouped by expert, tokens
// ascending within an expert, so the expert GEMMs run on contiguous rows (gemm.wgsl grouped).
// Three passes: count per expert, prefix sum, fill. Deterministic; no atomics.

struct Params { n: u32, e: u32, slots: u32, _p: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read_write> order: array<u32>;
@group(0) @binding(3) var<storage, read_write> slot_expert: array<u32>;
@group(0) @binding(4) var<storage, read_write> gate_index: array<u32>;
@group(0) @binding(5) var<storage, read_write> groups: array<u32>;

// groups[e + 1] = tokens routed to expert e; one invocation per expert.
@compute @workgroup_size(64)
fn route_count(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x;
    if (e >= p.e) { return; }
    var c = 0u;
    for (var t = 0u; t < p.n; t++) {
        if (gates[t * p.e + e] > 0.0) { c++; }
    }
    groups[e + 1u] = c;
}

// Prefix sum into expert boundaries; slots past the last (gates that underflowed to 0) point
// past the end of every table. One invocation.
@compute @workgroup_size(1)
fn route_scan() {
    groups[0] = 0u;
    for (var e = 0u; e < p.e; e++) { groups[e + 1u] += groups[e]; }
    for (var s = groups[p.e]; s < p.slots; s++) {
        order[s] = p.n;
        slot_expert[s] = p.e;
        gate_index[s] = p.n * p.e;
    }
}

// Each expert writes its tokens into its slots; one invocation per expert.
@compute @workgroup_size(64)
fn route_fill(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x;
    if (e >= p.e) { return; }
    var s = groups[e];
    for (var t = 0u; t < p.n; t++) {
        if (gates[t * p.e + e] > 0.0) {
            order[s] = t;
            slot_expert[s] = e;
            gate_index[s] = t * p.e + e;
            s++;
        }
    }
}
