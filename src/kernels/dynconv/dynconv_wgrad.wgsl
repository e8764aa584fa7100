// Fused weight gradients of a dynamic / PAD convolution (docs/method.md §1.2). Each invocation
// owns a TM x TN block of kernel positions (rows: output channels of a group; columns:
// (ci, ky, kx)) and walks its samples; for each sample n it computes the block of the per-sample
// gradient G_n = dW~_n in registers (as conv.wgsl's grad_weight does) and contracts it at
// once, so no per-sample gradient is ever written to memory:
//
//   A_ext[e] += alpha_ext[n, e] * G_n          (e < KE: A_k = sum_n alpha_nk G_n, and S = sum_n G_n)
//   dalpha_part[n, k, invocation] = <V_k, G_n>  (k < KK: V_k = ld M (.) W_k; summed over
//                                                invocations by the next dispatch)
//
// Template parameters TM, TN, WX, WY (blocking) and KK, KE (kernels, kernels + static row).
// Samples are split over `splits` groups of workgroups; each split writes its own A_ext.

struct Params {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, kh: u32, kw: u32, groups: u32,
    oh: u32, ow: u32, sh: u32, sw: u32,
    ph: u32, pw: u32, dh: u32, dw: u32,
    tiles_n: u32, n_per_split: u32, threads: u32, _p: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read> alpha_ext: array<f32>;
@group(0) @binding(4) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> a_part: array<f32>;
@group(0) @binding(6) var<storage, read_write> dalpha_part: array<f32>;

//@include grid

// An invocation's block: group `grp`, split of the samples (n0 .. n1), first row (filter) and
// column, and `tid`, the slot of its dalpha partials (every invocation owns one; one whose block
// lies past the end writes zeros: `zero_dalpha`). valid: the split exists.
struct Block { grp: u32, split: u32, row0: u32, col0: u32, tid: u32, n0: u32, n1: u32, valid: bool }

fn block_of(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, og: u32) -> Block {
    let tiles_m = (og + ${TM*WY-1}u) / ${TM*WY}u;
    let per_group = tiles_m * p.tiles_n;
    let tile = group_index(wg, nwg);
    let gs = tile / per_group;
    let r = tile % per_group;
    var b: Block;
    b.grp = gs % p.groups;
    b.split = gs / p.groups;
    b.row0 = (r / p.tiles_n) * ${TM*WY}u + lid.y * ${TM}u;
    b.col0 = (r % p.tiles_n) * ${TN*WX}u + lid.x;
    b.tid = (b.grp * per_group + r) * ${WX*WY}u + lid.y * ${WX}u + lid.x;
    b.n0 = b.split * p.n_per_split;
    b.n1 = min(b.n0 + p.n_per_split, p.n);
    b.valid = b.split < (p.n + p.n_per_split - 1u) / p.n_per_split;
    return b;
}

fn zero_dalpha(b: Block) {
    for (var nn = b.n0; nn < b.n1; nn++) {
//@for k in 0..KK
        dalpha_part[(nn * ${KK}u + ${k}u) * p.threads + b.tid] = 0.0;
//@end
    }
}

fn put_a(off: u32, col: u32, cols: u32, val: f32) {
    if (col < cols) { a_part[off + col] = val; }
}

// With SG = 1 a row of WX invocations (the same filters) lies in one subgroup and shares dy by
// shuffles, as conv.wgsl's `grad_weight` (conv_wgrad_sample.wgsl). W = 1 selects `main_w`.
//@for w_off in 0..1-W
//@for sg_off in 0..1-SG
@compute @workgroup_size(${WX}, ${WY}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
//@end
//@for sg_on in 0..SG
@compute @workgroup_size(${WX*WY}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
//@include subgroup_place
//@end
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let khw = p.kh * p.kw;
    let cols = cg * khw;
    let kn = p.o * cols; // elements of one kernel
    let b = block_of(wg, nwg, lid, og);
    if (!b.valid) { return; }
    // With shuffles only whole rows of lanes may leave; lanes past the last column serve the
    // others' shuffles, with V zero there (no dalpha) and no A_ext stored.
//@for sg_off in 0..1-SG
    if (b.row0 >= og || b.col0 >= cols) {
//@end
//@for sg_on in 0..SG
    if (b.row0 >= og) {
//@end
        zero_dalpha(b);
        return;
    }
    let grp = b.grp;
    let split = b.split;
    let row0 = b.row0;
    let col0 = b.col0;
    let tid = b.tid;
    let n0 = b.n0;
    let n1 = b.n1;
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;
//@for i in 0..TM
    let ok_r${i} = row0 + ${i}u < og;
    let wr${i} = (grp * og + min(row0 + ${i}u, og - 1u)) * cols;
    let do${i} = (grp * og + min(row0 + ${i}u, og - 1u)) * ohw;
//@end
//@include conv_columns
    // V_k on this block (zero outside the kernel), kept for every sample.
//@for k in 0..KK
//@for i in 0..TM
//@for q in 0..TN/4
    let vt${k}_${i}_${q} = select(vec4<f32>(0.0), vec4<f32>(v[${k}u * kn + wr${i} + c${4*q}], v[${k}u * kn + wr${i} + c${4*q+1}], v[${k}u * kn + wr${i} + c${4*q+2}], v[${k}u * kn + wr${i} + c${4*q+3}]), vec4<bool>(ok_r${i} && ok_c${4*q}, ok_r${i} && ok_c${4*q+1}, ok_r${i} && ok_c${4*q+2}, ok_r${i} && ok_c${4*q+3}));
//@end
//@end
//@end
//@for e in 0..KE
//@for i in 0..TM
//@for q in 0..TN/4
    var a${e}_${i}_${q} = vec4<f32>(0.0);
//@end
//@end
//@end
    for (var nn = n0; nn < n1; nn++) {
        let xn = nn * p.c * hw;
        let dn = nn * p.o * ohw;
//@for i in 0..TM
//@for q in 0..TN/4
        var g${i}_${q} = vec4<f32>(0.0);
//@end
//@end
//@include conv_wgrad_sample
//@for e in 0..KE
        let al${e} = vec4<f32>(alpha_ext[nn * ${KE}u + ${e}u]);
//@for i in 0..TM
//@for q in 0..TN/4
        a${e}_${i}_${q} = fma(al${e}, g${i}_${q}, a${e}_${i}_${q});
//@end
//@end
//@end
//@for k in 0..KK
        var dk${k} = 0.0;
//@for i in 0..TM
//@for q in 0..TN/4
        dk${k} += dot(vt${k}_${i}_${q}, g${i}_${q});
//@end
//@end
        dalpha_part[(nn * ${KK}u + ${k}u) * p.threads + tid] = dk${k};
//@end
    }
    let base = split * ${KE}u * kn;
//@for e in 0..KE
//@for i in 0..TM
    if (ok_r${i}) {
        let off = base + ${e}u * kn + wr${i};
//@for q in 0..TN/4
        put_a(off, col0 + ${WX*4*q}u, cols, a${e}_${i}_${q}.x);
        put_a(off, col0 + ${WX*(4*q+1)}u, cols, a${e}_${i}_${q}.y);
        put_a(off, col0 + ${WX*(4*q+2)}u, cols, a${e}_${i}_${q}.z);
        put_a(off, col0 + ${WX*(4*q+3)}u, cols, a${e}_${i}_${q}.w);
//@end
    }
//@end
//@end
}
//@end

// ---- Sliding window (CPU adapters with subgroups, 3×3 kernels at stride 1 and dilation 1), as
// conv.wgsl's `grad_weight_w`: invocation (filters row0 .. row0 + TM, input channels col0 + WX·j)
// holds G_n, A_ext and V for the nine taps of its channels (TM/4 × TN × 9 vec4s over filters
// each), lanes are channels and dy's values come by shuffle (conv_wgrad_window.wgsl). Lanes past
// the last channel keep serving the shuffles; their V is zero and they store no A_ext.
//@for w_on in 0..W
@compute @workgroup_size(${WX*WY}, 1, 1)
fn main_w(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
          @builtin(subgroup_invocation_id) lane: u32) {
//@include subgroup_place
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let cols = cg * 9u;
    let kn = p.o * cols; // elements of one kernel
    let b = block_of(wg, nwg, lid, og);
    if (!b.valid) { return; }
    // Whole rows of lanes (the same filters) leave together: none is left to shuffle with.
    if (b.row0 >= og) {
        zero_dalpha(b);
        return;
    }
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;
//@for i in 0..TM
    let ok_r${i} = b.row0 + ${i}u < og;
    let wr${i} = (b.grp * og + min(b.row0 + ${i}u, og - 1u)) * cols;
    let do${i} = (b.grp * og + min(b.row0 + ${i}u, og - 1u)) * ohw;
//@end
//@for j in 0..TN
    let ok_c${j} = b.col0 + ${WX*j}u < cg;
    let cw${j} = min(b.col0 + ${WX*j}u, cg - 1u) * 9u;
    let xo${j} = (b.grp * cg + min(b.col0 + ${WX*j}u, cg - 1u)) * hw;
//@end
    // V_k on this block (zero outside the kernel), kept for every sample.
//@for k in 0..KK
//@for q in 0..TM/4
//@for j in 0..TN
//@for t in 0..9
    let vt${k}_${q}_${j}_${t} = select(vec4<f32>(0.0), vec4<f32>(v[${k}u * kn + wr${4*q} + cw${j} + ${t}u], v[${k}u * kn + wr${4*q+1} + cw${j} + ${t}u], v[${k}u * kn + wr${4*q+2} + cw${j} + ${t}u], v[${k}u * kn + wr${4*q+3} + cw${j} + ${t}u]), vec4<bool>(ok_r${4*q} && ok_c${j}, ok_r${4*q+1} && ok_c${j}, ok_r${4*q+2} && ok_c${j}, ok_r${4*q+3} && ok_c${j}));
//@end
//@end
//@end
//@end
//@for e in 0..KE
//@for q in 0..TM/4
//@for j in 0..TN
//@for t in 0..9
    var a${e}_${q}_${j}_${t} = vec4<f32>(0.0);
//@end
//@end
//@end
//@end
    for (var nn = b.n0; nn < b.n1; nn++) {
        let xn = nn * p.c * hw;
        let dn = nn * p.o * ohw;
//@for q in 0..TM/4
//@for j in 0..TN
//@for k in 0..9
        var g${q}_${j}_${k} = vec4<f32>(0.0);
//@end
//@end
//@end
//@include conv_wgrad_window
//@for e in 0..KE
        let al${e} = vec4<f32>(alpha_ext[nn * ${KE}u + ${e}u]);
//@for q in 0..TM/4
//@for j in 0..TN
//@for t in 0..9
        a${e}_${q}_${j}_${t} = fma(al${e}, g${q}_${j}_${t}, a${e}_${q}_${j}_${t});
//@end
//@end
//@end
//@end
//@for k in 0..KK
        var dk${k} = 0.0;
//@for q in 0..TM/4
//@for j in 0..TN
//@for t in 0..9
        dk${k} += dot(vt${k}_${q}_${j}_${t}, g${q}_${j}_${t});
//@end
//@end
//@end
        dalpha_part[(nn * ${KK}u + ${k}u) * p.threads + b.tid] = dk${k};
//@end
    }
    let base = b.split * ${KE}u * kn;
//@for q in 0..TM/4
    let left${q} = og - min(og, b.row0 + ${4*q}u);
//@end
//@for j in 0..TN
    if (ok_c${j}) {
//@for e in 0..KE
//@for q in 0..TM/4
//@for t in 0..9
        put_a4(base + ${e}u * kn + wr${4*q} + cw${j} + ${t}u, cols, left${q}, a${e}_${q}_${j}_${t});
//@end
//@end
//@end
    }
//@end
}
//@end

// ---- Depthwise layers on CPU adapters (groups = c = o), as conv.wgsl's `grad_weight_dw`: the
// lanes are channels, and invocation (split, channel) holds its channel's TN ≥ kh·kw taps of
// G_n, A_ext and V (the taps past kh·kw zero). `main` would give each channel's 1 × kh·kw
// block its own workgroup, with lanes split over the taps. dalpha partials: one per channel
// (`threads` = c).
@compute @workgroup_size(64, 1, 1)
fn main_dw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let count = p.n;
//@include dw_wgrad_place
    let kn = p.c * khw; // elements of one kernel
//@for j in 0..TN
    let ok_t${j} = ${j}u < khw;
//@for k in 0..KK
    let vt${k}_${j} = select(0.0, v[${k}u * kn + ch * khw + min(${j}u, khw - 1u)], ok_t${j});
//@end
//@for e in 0..KE
    var a${e}_${j} = 0.0;
//@end
//@end
    let n0 = split * p.n_per_split;
    let n1 = min(n0 + p.n_per_split, p.n);
    for (var nn = n0; nn < n1; nn++) {
        let xb = (nn * p.c + ch) * hw;
        let db = (nn * p.o + ch) * ohw;
//@for j in 0..TN
        var g${j} = 0.0;
//@end
//@include conv_dw_wgrad
//@for e in 0..KE
        let al${e} = alpha_ext[nn * ${KE}u + ${e}u];
//@for j in 0..TN
        a${e}_${j} = fma(al${e}, g${j}, a${e}_${j});
//@end
//@end
//@for k in 0..KK
        var dk${k} = 0.0;
//@for j in 0..TN
        dk${k} = fma(vt${k}_${j}, g${j}, dk${k});
//@end
        dalpha_part[(nn * ${KK}u + ${k}u) * p.threads + ch] = dk${k};
//@end
    }
    let base = split * ${KE}u * kn + ch * khw;
//@for e in 0..KE
//@for j in 0..TN
    if (ok_t${j}) { a_part[base + ${e}u * kn + ${j}u] = a${e}_${j}; }
//@end
//@end
}

// Filters f .. f + 3 of A_ext at `at` (filters `stride` apart), those below `left`.
fn put_a4(at: u32, stride: u32, left: u32, v: vec4<f32>) {
    if (left > 0u) { a_part[at] = v.x; }
    if (left > 1u) { a_part[at + stride] = v.y; }
    if (left > 2u) { a_part[at + 2u * stride] = v.z; }
    if (left > 3u) { a_part[at + 3u * stride] = v.w; }
}
