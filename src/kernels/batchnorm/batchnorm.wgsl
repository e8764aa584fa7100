// BatchNorm over x viewed as [n, c, inner], optionally fused with the following ReLU or ReLU6
// (ACT, include/activation.wgsl; their derivative at the output y equals the one at the input,
// so the backward masks by act_grad(y)). Statistics per channel over n and inner.
// Train: batch mean and biased variance normalise; running statistics move by `momentum` with
// the unbiased variance (PyTorch semantics). Eval: the running statistics normalise.
//
// Reductions: one workgroup of 64 invocations per channel, tree-reduced in workgroup memory,
// two passes (mean, then centred squares) for accuracy; each invocation sums every sample's
// plane into its own partial before adding it to its total (blocked, so an f32 sum of n*inner
// terms carries the rounding of about inner/64 + n terms, not n*inner/64; docs/numerics.md).
// On CPU adapters the lanes are channels instead (`stats_parts`, `grad_parts`): invocation
// (part, channel) reduces that channel over a part of the batch, and a finishing entry
// combines the parts per channel (the SyncBN combination below, over parts instead of ranks).
// They also fold the per-channel constants (centre/scale/shift forward; the gradient
// coefficients backward) so that the elementwise passes load them once per run of RUN
// elements. Both elementwise passes subtract the centre (the mean) from x before scaling:
// x*scale - mean*scale would cancel where |mean| >> std (conv outputs over a constant
// background) and lose the low bits of every output.

// ranks: SyncBN's data-parallel ranks; parts: the batch parts of `stats_parts`/`grad_parts`.
struct Params { n: u32, c: u32, inner: u32, eps: f32, momentum: f32, ranks: u32, parts: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;

// grad_reduce of eval-mode BatchNorm: the statistics are the running ones (the "inv_std"
// binding holds the running variance) and do not depend on x, so dx = gamma * inv_std * g.
override EVAL: bool = false;
const RUN: u32 = 32u;

var<workgroup> red: array<f32, 64>;
var<workgroup> red2: array<f32, 64>;

fn count() -> u32 { return p.n * p.inner; }

// Sums `red` and `red2` over the workgroup; result in element 0 of each.
fn reduce_pair(lid: u32) {
    for (var s = 32u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lid < s) {
            red[lid] += red[lid + s];
            red2[lid] += red2[lid + s];
        }
    }
    workgroupBarrier();
}

//@include activation

const WG_SIZE: u32 = 64u;
//@include index

// Elementwise passes: invocation -> (plane = n*c + ch, run of RUN elements within the plane).
struct Run { plane: u32, ch: u32, start: u32, end: u32, valid: bool }

fn run_of(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> Run {
    let id = index(wg, nwg, lid);
    let runs = (p.inner + RUN - 1u) / RUN;
    var r: Run;
    r.plane = id / runs;
    r.valid = r.plane < p.n * p.c;
    r.ch = r.plane % p.c;
    r.start = r.plane * p.inner + (id % runs) * RUN;
    r.end = min(r.start + RUN, (r.plane + 1u) * p.inner);
    return r;
}

// ---- train statistics: x -> (mean, inv_std, scale/shift); running stats updated in place ----
@group(0) @binding(1) var<storage, read> st_x: array<f32>;
@group(0) @binding(2) var<storage, read> st_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> st_beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> st_running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> st_mean: array<f32>;
@group(0) @binding(7) var<storage, read_write> st_inv_std: array<f32>;
@group(0) @binding(8) var<storage, read_write> st_coef: array<f32>; // [scale c, shift c, centre c]

// Mean and sum of centred squares of this rank's channel `c` (a workgroup, two passes);
// every invocation returns them.
fn moments(c: u32, lid: u32) -> vec2<f32> {
    var s = 0.0;
    for (var nn = 0u; nn < p.n; nn++) {
        let base = (nn * p.c + c) * p.inner;
        var plane = 0.0;
        for (var i = lid; i < p.inner; i += 64u) { plane += st_x[base + i]; }
        s += plane;
    }
    red[lid] = s;
    red2[lid] = 0.0;
    reduce_pair(lid);
    let mean = red[0] / f32(count());
    workgroupBarrier();
    var q = 0.0;
    for (var nn = 0u; nn < p.n; nn++) {
        let base = (nn * p.c + c) * p.inner;
        var plane = 0.0;
        for (var i = lid; i < p.inner; i += 64u) { let d = st_x[base + i] - mean; plane += d * d; }
        q += plane;
    }
    red[lid] = q;
    red2[lid] = 0.0;
    reduce_pair(lid);
    return vec2<f32>(mean, red[0]);
}

// Channel c's statistics from its mean and centred squares over `cnt` values: the batch's
// mean and inv_std, the running statistics, the constants of `apply`.
fn finish_stats(c: u32, mean: f32, m2: f32, cnt: u32) {
    let var_b = m2 / f32(cnt);
    let inv_std = inverseSqrt(var_b + p.eps);
    st_mean[c] = mean;
    st_inv_std[c] = inv_std;
    let unbiased = var_b * f32(cnt) / f32(max(cnt, 2u) - 1u);
    st_running_mean[c] = (1.0 - p.momentum) * st_running_mean[c] + p.momentum * mean;
    st_running_var[c] = (1.0 - p.momentum) * st_running_var[c] + p.momentum * unbiased;
    st_coef[c] = st_gamma[c] * inv_std;
    st_coef[p.c + c] = st_beta[c];
    st_coef[2u * p.c + c] = mean;
}

@compute @workgroup_size(WG_SIZE)
fn stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let m = moments(wg.x, lid3.x);
    if (lid3.x == 0u) { finish_stats(wg.x, m.x, m.y, count()); }
}

// ---- SyncBN (ranks > 1, docs/distributed.md): each rank's moments, gathered on the host,
// combined per channel (Chan et al.'s pairwise update: exact, no E[x²] - E[x]² cancellation) ----
@group(0) @binding(9) var<storage, read_write> sl_local: array<f32>; // [mean c, m2 c, count c]

@compute @workgroup_size(WG_SIZE)
fn stats_local(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let m = moments(wg.x, lid3.x);
    if (lid3.x == 0u) {
        sl_local[wg.x] = m.x;
        sl_local[p.c + wg.x] = m.y;
        sl_local[2u * p.c + wg.x] = f32(count());
    }
}

// The samples of batch part `part` (`stats_parts`, `grad_parts`): [x, y).
fn part_samples(part: u32) -> vec2<u32> {
    let per = (p.n + p.parts - 1u) / p.parts;
    return vec2<u32>(min(part * per, p.n), min(part * per + per, p.n));
}

// Invocation (part, channel) over channel-major lanes, or None past the last.
fn part_lane(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> vec3<u32> {
    let idx = index(wg, nwg, lid);
    return vec3<u32>(idx / p.c, idx % p.c, u32(idx < p.c * p.parts));
}

// The workgroup forms of the per-part reductions (`stats_parts_wg`, `grad_parts_wg`):
// workgroup (part, channel); z = 0 past the last (the workgroup still takes part in the
// barriers, as all of it does).
fn part_group(wg: vec3<u32>, nwg: vec3<u32>) -> vec3<u32> {
    let idx = group_index(wg, nwg);
    let valid = idx < p.c * p.parts;
    let at = select(0u, idx, valid);
    return vec3<u32>(at / p.c, at % p.c, u32(valid));
}

// The per-part reductions add runs of SUM_RUN values first, then the runs' totals; the
// finishing entries add the parts (or ranks) in groups of about their square root, then the
// groups' totals (a sequential sum of 64 parts measured twice PyTorch's error on gradients).
const SUM_RUN: u32 = 16u;

fn group_len(count: u32) -> u32 { return max(1u, u32(ceil(sqrt(f32(count))))); }

// Which pass `stats_parts` makes: the part's sum of x - x[0, ch, 0] (false), or its sum of
// squares around the batch mean that `mean_of_parts` wrote (true). The shift by the channel's
// first value makes the mean's rounding scale with the spread of x, not with |mean|: where
// |mean| >> std (a constant background) a sum of x itself measured several times PyTorch's
// error on gradients of tests/model_grads.rs, in part sums and in Chan's combination alike.
override CENTRED: bool = false;

// The shift of pass 1: channel ch's first value.
fn shift_of(ch: u32) -> f32 { return st_x[ch * p.inner]; }

// Pass 1's or pass 2's term of element i of channel ch (`CENTRED`), `mean` the shift or the mean.
fn stat_term(i: u32, mean: f32) -> f32 {
    let d = st_x[i] - mean;
    return select(d, d * d, CENTRED);
}

// What `stats_parts` starts from: channel ch's shift (pass 1) or batch mean (pass 2).
fn stat_centre(ch: u32) -> f32 { return select(shift_of(ch), st_mean[ch], CENTRED); }

// Batch part `part`'s entry of channel ch from its sum `s` over samples ns: pass 1 leaves the
// part's sum and count, pass 2 the mean and the squares around it.
fn put_stats_part(part: u32, ch: u32, ns: vec2<u32>, mean: f32, s: f32) {
    let e = 3u * part * p.c + ch;
    if (CENTRED) {
        sl_local[e] = mean;
        sl_local[e + p.c] = s;
    } else {
        sl_local[e] = s;
        sl_local[e + 2u * p.c] = f32((ns.y - ns.x) * p.inner);
    }
}

// CPU adapters: channel `ch` over one batch part, at entry `part` in the layout of
// `stats_local` (pass 1 puts its sum where the mean goes).
@compute @workgroup_size(WG_SIZE)
fn stats_parts(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let l = part_lane(wg, nwg, lid);
    if (l.z == 0u) { return; }
    let ch = l.y;
    let ns = part_samples(l.x);
    let mean = stat_centre(ch);
    var s = 0.0;
    for (var nn = ns.x; nn < ns.y; nn++) {
        let base = (nn * p.c + ch) * p.inner;
        for (var i0 = 0u; i0 < p.inner; i0 += SUM_RUN) {
            var run = 0.0;
            for (var i = base + i0; i < base + min(i0 + SUM_RUN, p.inner); i++) {
                run += stat_term(i, mean);
            }
            s += run;
        }
    }
    put_stats_part(l.x, ch, ns, mean, s);
}

// GPUs: `stats_parts` with a workgroup per (part, channel) (`part_group`), its invocations
// striding each plane as `moments` does, the entry written once the workgroup has added up
// their sums.
@compute @workgroup_size(WG_SIZE)
fn stats_parts_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid3: vec3<u32>) {
    let l = part_group(wg, nwg);
    let lid = lid3.x;
    let ns = part_samples(l.x);
    let mean = stat_centre(l.y);
    var s = 0.0;
    for (var nn = ns.x; nn < ns.y; nn++) {
        let base = (nn * p.c + l.y) * p.inner;
        var plane = 0.0;
        for (var i = base + lid; i < base + p.inner; i += WG_SIZE) { plane += stat_term(i, mean); }
        s += plane;
    }
    red[lid] = s;
    red2[lid] = 0.0;
    reduce_pair(lid);
    if (lid == 0u && l.z == 1u) { put_stats_part(l.x, l.y, ns, mean, red[0]); }
}

@group(0) @binding(9) var<storage, read> sf_all: array<f32>; // entries x [mean c, m2 c, count c]

// Between the passes of `stats_parts`: channel c's batch mean from its parts' sums.
@compute @workgroup_size(WG_SIZE)
fn mean_of_parts(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.c) { return; }
    let g = group_len(p.parts);
    var n = 0.0;
    var s = 0.0;
    for (var r0 = 0u; r0 < p.parts; r0 += g) {
        var gn = 0.0;
        var gs = 0.0;
        for (var r = r0; r < min(r0 + g, p.parts); r++) {
            gs += sf_all[3u * r * p.c + c];
            gn += sf_all[(3u * r + 2u) * p.c + c];
        }
        s += gs;
        n += gn;
    }
    st_mean[c] = shift_of(c) + s / n;
}

// Channel c's statistics from ranks x parts entries of moments (one of the two is 1).
@compute @workgroup_size(WG_SIZE)
fn stats_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.c) { return; }
    let entries = p.ranks * p.parts;
    let g = group_len(entries);
    var n = 0.0;
    var s = 0.0;
    for (var r0 = 0u; r0 < entries; r0 += g) {
        var gn = 0.0;
        var gs = 0.0;
        for (var r = r0; r < min(r0 + g, entries); r++) {
            let nr = sf_all[(3u * r + 2u) * p.c + c];
            gn += nr;
            gs += nr * sf_all[3u * r * p.c + c];
        }
        n += gn;
        s += gs;
    }
    let mean = s / n;
    var m2 = 0.0;
    for (var r0 = 0u; r0 < entries; r0 += g) {
        var gm = 0.0;
        for (var r = r0; r < min(r0 + g, entries); r++) {
            let nr = sf_all[(3u * r + 2u) * p.c + c];
            let d = sf_all[3u * r * p.c + c] - mean;
            gm += sf_all[(3u * r + 1u) * p.c + c] + nr * d * d;
        }
        m2 += gm;
    }
    finish_stats(c, mean, m2, u32(n));
}

// ---- eval constants: scale/shift/centre from the running statistics ----
@group(0) @binding(1) var<storage, read> ec_gamma: array<f32>;
@group(0) @binding(2) var<storage, read> ec_beta: array<f32>;
@group(0) @binding(3) var<storage, read> ec_running_mean: array<f32>;
@group(0) @binding(4) var<storage, read> ec_running_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> ec_coef: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn eval_coef(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.c) { return; }
    ec_coef[c] = ec_gamma[c] * inverseSqrt(ec_running_var[c] + p.eps);
    ec_coef[p.c + c] = ec_beta[c];
    ec_coef[2u * p.c + c] = ec_running_mean[c];
}

// ---- normalise: y = act((x - centre) * scale + shift) ----
@group(0) @binding(1) var<storage, read> ap_x: array<f32>;
@group(0) @binding(2) var<storage, read> ap_coef: array<f32>;
@group(0) @binding(3) var<storage, read_write> ap_y: array<f32>;

// Channel ch's (scale, shift, centre).
fn apply_coef(ch: u32) -> vec3<f32> {
    return vec3<f32>(ap_coef[ch], ap_coef[p.c + ch], ap_coef[2u * p.c + ch]);
}

@compute @workgroup_size(WG_SIZE)
fn apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = run_of(wg, nwg, lid);
    if (!r.valid) { return; }
    let k = apply_coef(r.ch);
    for (var i = r.start; i < r.end; i++) { ap_y[i] = act((ap_x[i] - k.z) * k.x + k.y); }
}

// `apply` where planes are whole vec4s (the plan picks it then; runs start at multiples of
// RUN, so every run is whole vec4s too): `ap_x4` and `ap_y4` alias bindings 1 and 3, and a vec4
// costs lavapipe about what one f32 does (docs/architecture.md, "Kernel assembly").
@group(0) @binding(1) var<storage, read> ap_x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> ap_y4: array<vec4<f32>>;

@compute @workgroup_size(WG_SIZE)
fn apply4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = run_of(wg, nwg, lid);
    if (!r.valid) { return; }
    let k = apply_coef(r.ch);
    for (var q = r.start / 4u; q < r.end / 4u; q++) {
        ap_y4[q] = act4((ap_x4[q] - k.z) * k.x + k.y);
    }
}

// ---- backward reduce: with g = dy * act'(y): dgamma = sum g * xhat, dbeta = sum g, and the
// coefficients of dx = A g + B (x - mean) + C ----
@group(0) @binding(1) var<storage, read> gr_x: array<f32>;
@group(0) @binding(2) var<storage, read> gr_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> gr_mean: array<f32>;
@group(0) @binding(4) var<storage, read> gr_inv_std: array<f32>;
@group(0) @binding(5) var<storage, read> gr_dy: array<f32>;
@group(0) @binding(6) var<storage, read> gr_y: array<f32>;
@group(0) @binding(7) var<storage, read_write> gr_dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> gr_dbeta: array<f32>;
@group(0) @binding(9) var<storage, read_write> gr_coef: array<f32>; // [A c, B c, C c, mean c]

fn grad_inv_std(c: u32) -> f32 {
    return select(gr_inv_std[c], inverseSqrt(gr_inv_std[c] + p.eps), EVAL);
}

// (dbeta, dgamma) = (sum g, sum g * xhat) of channel c over samples ns.x .. ns.y (a
// workgroup, its invocations striding each plane); every invocation returns them.
fn grad_moments(c: u32, lid: u32, ns: vec2<u32>) -> vec2<f32> {
    let mean = gr_mean[c];
    var sums = vec2<f32>(0.0);
    for (var nn = ns.x; nn < ns.y; nn++) {
        let base = (nn * p.c + c) * p.inner;
        var plane = vec2<f32>(0.0);
        for (var i = base + lid; i < base + p.inner; i += WG_SIZE) { plane += grad_terms(i, mean); }
        sums += plane;
    }
    red[lid] = sums.x;
    red2[lid] = sums.y * grad_inv_std(c);
    reduce_pair(lid);
    return vec2<f32>(red[0], red2[0]);
}

// Element i's terms of (dbeta, dgamma / inv_std): the gradient at the input of the
// activation, and it times x - mean.
fn grad_terms(i: u32, mean: f32) -> vec2<f32> {
    var g = gr_dy[i];
    if (ACT != ACT_NONE) { g *= act_grad(gr_y[i]); }
    return vec2<f32>(g, g * (gr_x[i] - mean));
}

// The coefficients of dx from (dbeta, dgamma) summed over `m` values:
// dx = gamma*inv_std*(g - dbeta/m - xhat*dgamma/m), xhat = (x - mean)*inv_std
fn grad_finish(c: u32, dbeta: f32, dgamma: f32, m: f32) {
    let inv_std = grad_inv_std(c);
    let a = gr_gamma[c] * inv_std;
    let b = select(-a * inv_std * dgamma / m, 0.0, EVAL);
    gr_coef[c] = a;
    gr_coef[p.c + c] = b;
    gr_coef[2u * p.c + c] = select(-a * dbeta / m, 0.0, EVAL);
    gr_coef[3u * p.c + c] = gr_mean[c];
}

@compute @workgroup_size(WG_SIZE)
fn grad_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = wg.x;
    let sums = grad_moments(c, lid3.x, vec2<u32>(0u, p.n));
    if (lid3.x == 0u) {
        gr_dbeta[c] = sums.x;
        gr_dgamma[c] = sums.y;
        grad_finish(c, sums.x, sums.y, f32(count()));
    }
}

// ---- SyncBN backward: dgamma, dbeta stay this rank's own (the gradient all-reduce averages
// them like any parameter's); the coefficients of dx use the sums over every rank ----
@group(0) @binding(10) var<storage, read_write> gs_sums: array<f32>; // [dbeta c, dgamma c]

@compute @workgroup_size(WG_SIZE)
fn grad_sums(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let c = wg.x;
    let sums = grad_moments(c, lid3.x, vec2<u32>(0u, p.n));
    if (lid3.x == 0u) {
        gr_dbeta[c] = sums.x;
        gr_dgamma[c] = sums.y;
        gs_sums[c] = sums.x;
        gs_sums[p.c + c] = sums.y;
    }
}

@group(0) @binding(10) var<storage, read> gc_sums: array<f32>; // summed over the ranks

@compute @workgroup_size(WG_SIZE)
fn grad_coef(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.c) { return; }
    grad_finish(c, gc_sums[c], gc_sums[p.c + c], f32(count() * p.ranks));
}

// Batch part `part`'s (dbeta, dgamma) entry of channel ch.
fn put_grad_part(part: u32, ch: u32, sums: vec2<f32>) {
    gs_sums[2u * part * p.c + ch] = sums.x;
    gs_sums[(2u * part + 1u) * p.c + ch] = sums.y;
}

// CPU adapters: (dbeta, dgamma) of channel `ch` over one batch part, at entry `part` of the
// sums (`grad_moments` over a part, channels as lanes).
@compute @workgroup_size(WG_SIZE)
fn grad_parts(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let l = part_lane(wg, nwg, lid);
    if (l.z == 0u) { return; }
    let ch = l.y;
    let ns = part_samples(l.x);
    let mean = gr_mean[ch];
    var sums = vec2<f32>(0.0);
    for (var nn = ns.x; nn < ns.y; nn++) {
        let base = (nn * p.c + ch) * p.inner;
        for (var i0 = 0u; i0 < p.inner; i0 += SUM_RUN) {
            var run = vec2<f32>(0.0);
            for (var i = base + i0; i < base + min(i0 + SUM_RUN, p.inner); i++) {
                run += grad_terms(i, mean);
            }
            sums += run;
        }
    }
    put_grad_part(l.x, ch, vec2<f32>(sums.x, sums.y * grad_inv_std(ch)));
}

// GPUs: `grad_parts` with a workgroup per (part, channel), as `stats_parts_wg`.
@compute @workgroup_size(WG_SIZE)
fn grad_parts_wg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid3: vec3<u32>) {
    let l = part_group(wg, nwg);
    let sums = grad_moments(l.y, lid3.x, part_samples(l.x));
    if (lid3.x == 0u && l.z == 1u) { put_grad_part(l.x, l.y, sums); }
}

// The parts' sums of channel c added up: dbeta, dgamma and the coefficients of dx.
@compute @workgroup_size(WG_SIZE)
fn grad_parts_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.c) { return; }
    let g = group_len(p.parts);
    var dbeta = 0.0;
    var dgamma = 0.0;
    for (var r0 = 0u; r0 < p.parts; r0 += g) {
        var gb = 0.0;
        var gg = 0.0;
        for (var r = r0; r < min(r0 + g, p.parts); r++) {
            gb += gc_sums[2u * r * p.c + c];
            gg += gc_sums[(2u * r + 1u) * p.c + c];
        }
        dbeta += gb;
        dgamma += gg;
    }
    gr_dbeta[c] = dbeta;
    gr_dgamma[c] = dgamma;
    grad_finish(c, dbeta, dgamma, f32(count()));
}

// ---- backward input: dx = A g + B (x - mean) + C ----
@group(0) @binding(1) var<storage, read> gi_x: array<f32>;
@group(0) @binding(2) var<storage, read> gi_dy: array<f32>;
@group(0) @binding(3) var<storage, read> gi_y: array<f32>;
@group(0) @binding(4) var<storage, read> gi_coef: array<f32>;
@group(0) @binding(5) var<storage, read_write> gi_dx: array<f32>;

// Channel ch's (A, B, C, mean).
fn input_grad_coef(ch: u32) -> vec4<f32> {
    let c = p.c;
    return vec4<f32>(gi_coef[ch], gi_coef[c + ch], gi_coef[2u * c + ch], gi_coef[3u * c + ch]);
}

@compute @workgroup_size(WG_SIZE)
fn grad_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = run_of(wg, nwg, lid);
    if (!r.valid) { return; }
    let k = input_grad_coef(r.ch);
    for (var i = r.start; i < r.end; i++) {
        var g = gi_dy[i];
        if (ACT != ACT_NONE) { g *= act_grad(gi_y[i]); }
        gi_dx[i] = k.x * g + k.y * (gi_x[i] - k.w) + k.z;
    }
}

// `grad_input` where planes are whole vec4s (as `apply4`): aliases of bindings 1, 2, 3 and 5.
@group(0) @binding(1) var<storage, read> gi_x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gi_dy4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> gi_y4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> gi_dx4: array<vec4<f32>>;

@compute @workgroup_size(WG_SIZE)
fn grad_input4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = run_of(wg, nwg, lid);
    if (!r.valid) { return; }
    let k = input_grad_coef(r.ch);
    for (var q = r.start / 4u; q < r.end / 4u; q++) {
        var g = gi_dy4[q];
        if (ACT != ACT_NONE) { g *= act_grad4(gi_y4[q]); }
        gi_dx4[q] = k.x * g + k.y * (gi_x4[q] - k.w) + k.z;
    }
}
