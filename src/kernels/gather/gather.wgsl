// Row gather by index and its gradient: embedding lookups, and the MoE dispatch that gathers
// token rows into expert order. `table` [vocab, d] viewed by rows; ids >= vocab give 0.

// merge_channels reads vocab as Ca and extra as Cb.
struct Params { rows: u32, d: u32, vocab: u32, extra: u32 }

@group(0) @binding(0) var<uniform> p: Params;

const WG_SIZE: u32 = 64u;
//@include index

// ---- gather: (table [vocab, d], ids [rows]) -> out [rows, d]; ids >= vocab give 0 ----
override GATHER_RUN: u32 = 1u;
@group(0) @binding(1) var<storage, read> e_table: array<f32>;
@group(0) @binding(2) var<storage, read> e_ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> e_out: array<f32>;

// One invocation per GATHER_RUN consecutive elements of a row (d is a multiple of it): one
// integer division per run instead of per element (divisions are slow on CPU adapters).
@compute @workgroup_size(WG_SIZE)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid) * GATHER_RUN;
    if (i >= p.rows * p.d) { return; }
    let row = i / p.d;
    let id = e_ids[row];
    let ok = id < p.vocab;
    let src = select(0u, id * p.d + i - row * p.d, ok);
    for (var r = 0u; r < GATHER_RUN; r++) {
        e_out[i + r] = select(0.0, e_table[src + r], ok);
    }
}

// ---- embedding gradient, deterministic without atomics: `chain` links each token to the next
// token with the same id (and flags tokens that are not their id's first), `zero_table` clears
// the gradient, and in `scatter_chain` the first token of each id sums its chain per column, in
// token order. Work O(T² + V·D + T·D) instead of a scan of all tokens per table row.
//
// Every loop is bounded by windows of CHAIN_WINDOW tokens (lavapipe's loop limit,
// docs/architecture.md "The loop limit"; unbounded on GPUs): window j = p.extra of `chain`
// searches tokens t + 1 + j·W .. for the next link and j·W .. for an earlier one, keeping what
// earlier windows found; window j of `scatter_chain` adds W tokens of the chain from where
// `chain_advance` (window j − 1) left its cursor, to the sum the windows before wrote.
const NONE: u32 = 0x7fffffffu;
const LATER: u32 = 0x80000000u;
override CHAIN_WINDOW: u32 = 0xffffffffu;

// The end of the window of tokens from `lo`, at most `limit` (lo past the limit: empty).
fn window_end(lo: u32, limit: u32) -> u32 {
    return lo + min(limit - min(lo, limit), CHAIN_WINDOW);
}

@group(0) @binding(1) var<storage, read> c_ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> c_next: array<u32>;

@compute @workgroup_size(WG_SIZE)
fn chain(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = index(wg, nwg, lid);
    if (t >= p.rows) { return; }
    let id = c_ids[t];
    let j = p.extra;
    var link = select(c_next[t], NONE, j == 0u);
    if ((link & NONE) == NONE) {
        let lo = t + 1u + j * CHAIN_WINDOW;
        let hi = window_end(lo, p.rows);
        for (var u = lo; u < hi; u++) {
            if (c_ids[u] == id) { link = (link & LATER) | u; break; }
        }
    }
    if ((link & LATER) == 0u) {
        let lo = j * CHAIN_WINDOW;
        let hi = window_end(lo, t);
        for (var u = lo; u < hi; u++) {
            if (c_ids[u] == id) { link = link | LATER; break; }
        }
    }
    c_next[t] = link;
}

@group(0) @binding(1) var<storage, read_write> z_table: array<f32>;

// Runs of ZERO_RUN elements per invocation (the last one shorter): MiniLM's word-embedding
// gradient is 11.7 M elements: one invocation each took 20.7 ms of a lavapipe training step,
// runs of 16 take 13.6-14.7 (3.4 GB/s, near the copy probe's 4.5).
const ZERO_RUN: u32 = 16u;

@compute @workgroup_size(WG_SIZE)
fn zero_table(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let len = p.vocab * p.d;
    let i0 = index(wg, nwg, lid) * ZERO_RUN;
    if (i0 >= len) { return; }
    for (var i = i0; i < min(i0 + ZERO_RUN, len); i++) { z_table[i] = 0.0; }
}

@group(0) @binding(1) var<storage, read> s_dy: array<f32>;
@group(0) @binding(2) var<storage, read> s_ids: array<u32>;
@group(0) @binding(3) var<storage, read> s_next: array<u32>;
@group(0) @binding(4) var<storage, read_write> s_dtable: array<f32>;
// Where window j of token t's chain starts (`chain_advance`; window 0 starts at t).
@group(0) @binding(5) var<storage, read> s_cursor: array<u32>;

@compute @workgroup_size(WG_SIZE)
fn scatter_chain(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i >= p.rows * p.d) { return; }
    let t = i / p.d;
    let col = i % p.d;
    let id = s_ids[t];
    if ((s_next[t] & LATER) != 0u || id >= p.vocab) { return; }
    let first = p.extra == 0u;
    var u = select(s_cursor[t], t, first);
    if (u == NONE) { return; }
    let at = id * p.d + col;
    var acc = select(s_dtable[at], 0.0, first);
    for (var step = 0u; step < CHAIN_WINDOW; step++) {
        acc += s_dy[u * p.d + col];
        u = s_next[u] & NONE;
        if (u == NONE) { break; }
    }
    s_dtable[at] = acc;
}

@group(0) @binding(1) var<storage, read> a_next: array<u32>;
@group(0) @binding(2) var<storage, read_write> a_cursor: array<u32>;

// Moves each id's cursor past window j = p.extra of its chain (to NONE where it ends there).
@compute @workgroup_size(WG_SIZE)
fn chain_advance(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = index(wg, nwg, lid);
    if (t >= p.rows || (a_next[t] & LATER) != 0u) { return; }
    var u = select(a_cursor[t], t, p.extra == 0u);
    for (var step = 0u; step < CHAIN_WINDOW && u != NONE; step++) {
        u = a_next[u] & NONE;
    }
    a_cursor[t] = u;
}

// ---- merge_channels: (a [B, Ca, HW], b [B, Cb, HW], from [C] (f32 integers)) -> out [B, C, HW],
// C = Ca + Cb: output channel c is a's channel from[c] if from[c] < Ca, else b's channel
// from[c] - Ca. rows = B·C planes of d = HW; one invocation per run of MERGE_RUN consecutive
// elements of a plane (the last run of a plane shorter), so the integer divisions that find the
// plane are paid once per run (a split layer's 7×7 planes took one invocation per element). ----
@group(0) @binding(1) var<storage, read> m_a: array<f32>;
@group(0) @binding(2) var<storage, read> m_b: array<f32>;
@group(0) @binding(3) var<storage, read> m_from: array<f32>;
@group(0) @binding(4) var<storage, read_write> m_out: array<f32>;

const MERGE_RUN: u32 = 16u;

@compute @workgroup_size(WG_SIZE)
fn merge_channels(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let runs = (p.d + MERGE_RUN - 1u) / MERGE_RUN;
    let id = index(wg, nwg, lid);
    let row = id / runs;
    if (row >= p.rows) { return; }
    let pos = (id - row * runs) * MERGE_RUN;
    let len = min(MERGE_RUN, p.d - pos);
    let c_all = p.vocab + p.extra;
    let n = row / c_all;
    let f = u32(m_from[row % c_all]);
    let dst = row * p.d + pos;
    // A branch, not a select: a select would load from both inputs.
    if (f < p.vocab) {
        let src = (n * p.vocab + f) * p.d + pos;
        for (var r = 0u; r < len; r++) { m_out[dst + r] = m_a[src + r]; }
    } else {
        let src = (n * p.extra + f - p.vocab) * p.d + pos;
        for (var r = 0u; r < len; r++) { m_out[dst + r] = m_b[src + r]; }
    }
}
