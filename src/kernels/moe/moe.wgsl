// MoE dispatch plan (docs/method.md §1.3): from the gates [N, E] (k nonzero per row), every
// (token, expert) pair with a nonzero gate gets a slot; slots are grouped by expert, tokens
// ascending within an expert, so the expert GEMMs run on contiguous rows (matmul.wgsl grouped).
// Five passes: count per (block of tokens, expert), prefix sums, clear the token tables, rank,
// fill per (block, expert). Deterministic; no atomics. An expert keeps at most p.capacity
// tokens (the first ones). Blocks of `block` tokens keep each invocation's loop short (within
// lavapipe's loop limit, docs/architecture.md "The loop limit") and give a GPU blocks × E
// invocations where one per expert walked every token.
//
// The combine is the transpose of the dispatch: each token sums its own k slots (a gather),
// so no scatter, no atomics and no chains of equal ids are needed.

struct Params { n: u32, e: u32, slots: u32, k: u32, d: u32, capacity: u32, block: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read_write> order: array<u32>;
@group(0) @binding(3) var<storage, read_write> slot_expert: array<u32>;
@group(0) @binding(4) var<storage, read_write> token_slots: array<u32>;
@group(0) @binding(5) var<storage, read_write> groups: array<u32>;
@group(0) @binding(6) var<storage, read_write> ranks: array<u32>;
// counts[b·E + e]: block b's tokens routed to expert e, then (after `route_scan`) the place of
// the block's first among the expert's tokens.
@group(0) @binding(7) var<storage, read_write> counts: array<u32>;

const WG_SIZE: u32 = 64u;
//@include index

fn blocks() -> u32 { return (p.n + p.block - 1u) / p.block; }

// Invocation i of the per-(block, expert) passes: (expert, the block's first token, its end).
fn block_expert(i: u32) -> vec3<u32> {
    let t0 = (i / p.e) * p.block;
    return vec3<u32>(i % p.e, t0, min(t0 + p.block, p.n));
}

// counts[b·E + e] = tokens of block b routed to expert e; one invocation per (block, expert).
@compute @workgroup_size(WG_SIZE)
fn route_count(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= blocks() * p.e) { return; }
    let b = block_expert(i);
    var c = 0u;
    for (var t = b.y; t < b.z; t++) {
        if (gates[t * p.e + b.x] > 0.0) { c++; }
    }
    counts[i] = c;
}

// Per expert, each block's place among the expert's tokens (counts become prefix sums over
// the blocks) and the expert boundaries groups[e] (at most the capacity each). One invocation.
@compute @workgroup_size(1)
fn route_scan() {
    let nb = blocks();
    groups[0] = 0u;
    for (var e = 0u; e < p.e; e++) {
        var total = 0u;
        for (var b = 0u; b < nb; b++) {
            let c = counts[b * p.e + e];
            counts[b * p.e + e] = total;
            total += c;
        }
        groups[e + 1u] = groups[e] + min(total, p.capacity);
    }
}

// Every token-table entry starts unused, and the slots past the last (dropped tokens, gates
// that underflowed to 0) point past the end of every table; one invocation per entry.
@compute @workgroup_size(WG_SIZE)
fn route_clear(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.slots) { return; }
    token_slots[i] = p.slots;
    if (i >= groups[p.e]) {
        order[i] = p.n;
        slot_expert[i] = p.e;
    }
}

// ranks[t·E + e]: expert e's place among token t's chosen experts (those before it with a
// nonzero gate); one invocation per token.
@compute @workgroup_size(WG_SIZE)
fn route_rank(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = index(wg, nwg, lid);
    if (t >= p.n) { return; }
    var r = 0u;
    for (var f = 0u; f < p.e; f++) {
        ranks[t * p.e + f] = r;
        if (gates[t * p.e + f] > 0.0) { r++; }
    }
}

// Each (block, expert) writes the block's tokens into the expert's slots from the block's
// place (`route_scan`), and each slot into its token's table at the expert's rank among the
// token's choices (`route_rank`); tokens past the expert's capacity are dropped. One invocation
// per (block, expert), its loop once per token of the block (the rank was an inner loop over
// the experts, and 8 000 tokens on one expert passed lavapipe's loop limit).
@compute @workgroup_size(WG_SIZE)
fn route_fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= blocks() * p.e) { return; }
    let b = block_expert(i);
    let e = b.x;
    var s = groups[e] + counts[i];
    let end = groups[e + 1u];
    for (var t = b.y; t < b.z && s < end; t++) {
        if (gates[t * p.e + e] > 0.0) {
            order[s] = t;
            slot_expert[s] = e;
            let rank = ranks[t * p.e + e];
            if (rank < p.k) { token_slots[t * p.k + rank] = s; }
            s++;
        }
    }
}

// ---- combine and its gradient; one invocation per output element ----
@group(0) @binding(1) var<storage, read> c_ys: array<f32>;
@group(0) @binding(2) var<storage, read> c_token_slots: array<u32>;
@group(0) @binding(3) var<storage, read> c_order: array<u32>;
@group(0) @binding(4) var<storage, read> c_gates: array<f32>;
@group(0) @binding(5) var<storage, read> c_slot_expert: array<u32>;
@group(0) @binding(6) var<storage, read> c_bias: array<f32>;
@group(0) @binding(7) var<storage, read> c_groups: array<u32>;
@group(0) @binding(8) var<storage, read> c_dy: array<f32>;
@group(0) @binding(9) var<storage, read_write> c_out: array<f32>;
@group(0) @binding(10) var<storage, read_write> c_dgates: array<f32>;
@group(0) @binding(11) var<storage, read_write> c_dbias: array<f32>;

// Elementwise entries handle RUN consecutive columns of a row per invocation (d is a multiple
// of RUN): one integer division per run (divisions are slow on CPU adapters).
override RUN: u32 = 1u;

// out[t, c] = Σ_j ys[token_slots[t, j], c]
@compute @workgroup_size(WG_SIZE)
fn combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid) * RUN;
    if (i >= p.n * p.d) { return; }
    let t = i / p.d;
    let c = i - t * p.d;
    for (var r = 0u; r < RUN; r++) {
        var acc = 0.0;
        for (var j = 0u; j < p.k; j++) {
            let s = c_token_slots[t * p.k + j];
            if (s < p.slots) { acc += c_ys[s * p.d + c + r]; }
        }
        c_out[i + r] = acc;
    }
}

// out[t, c] = Σ_j gates[t, e_j] · (ys[s_j, c] + bias[e_j, c]), e_j = slot_expert[s_j].
// A separate entry from `combine`: an entry that referenced the gates at all (even behind an
// override) would need them bound, and the unweighted combine (the dispatch's gradient) has
// none.
@compute @workgroup_size(WG_SIZE)
fn combine_weighted(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid) * RUN;
    if (i >= p.n * p.d) { return; }
    let t = i / p.d;
    let c = i - t * p.d;
    for (var r = 0u; r < RUN; r++) {
        var acc = 0.0;
        for (var j = 0u; j < p.k; j++) {
            let s = c_token_slots[t * p.k + j];
            if (s < p.slots) {
                let e = c_slot_expert[s];
                acc += c_gates[t * p.e + e] * (c_ys[s * p.d + c + r] + c_bias[e * p.d + c + r]);
            }
        }
        c_out[i + r] = acc;
    }
}

// dys[s, c] = gates[t, e] · dy[t, c] for the slot's token t and expert e (0 if unused)
@compute @workgroup_size(WG_SIZE)
fn combine_grad_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid) * RUN;
    if (i >= p.slots * p.d) { return; }
    let s = i / p.d;
    let c = i - s * p.d;
    let t = c_order[s];
    var g = 0.0;
    var src = 0u;
    if (t < p.n) {
        g = c_gates[t * p.e + c_slot_expert[s]];
        src = t * p.d + c;
    }
    for (var r = 0u; r < RUN; r++) {
        c_out[i + r] = g * c_dy[src + r];
    }
}

// dgates[t, e] = dy[t] · (ys[s] + bias[e]) for the slot s of token t at expert e (0 if the
// token was not routed there)
@compute @workgroup_size(WG_SIZE)
fn combine_grad_gates(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.n * p.e) { return; }
    let t = i / p.e;
    let e = i % p.e;
    var acc = 0.0;
    for (var j = 0u; j < p.k; j++) {
        let s = c_token_slots[t * p.k + j];
        if (s < p.slots && c_slot_expert[s] == e) {
            for (var c = 0u; c < p.d; c++) {
                acc += c_dy[t * p.d + c] * (c_ys[s * p.d + c] + c_bias[e * p.d + c]);
            }
        }
    }
    c_dgates[i] = acc;
}

// dbias[e, c] = Σ over the expert's slots of dys[s, c] (reads combine_grad_rows' output)
@compute @workgroup_size(WG_SIZE)
fn combine_grad_bias(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.e * p.d) { return; }
    let e = i / p.d;
    let c = i % p.d;
    var acc = 0.0;
    for (var s = c_groups[e]; s < c_groups[e + 1u]; s++) {
        acc += c_out[s * p.d + c];
    }
    c_dbias[i] = acc;
}
