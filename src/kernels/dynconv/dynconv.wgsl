// Dynamic convolution (DY-Conv) and its partially dynamic form (PAD-Conv), docs/method.md §1.1–1.2.
// The convolution itself runs in conv.wgsl with per-sample weights; this file assembles those
// weights and folds the weight gradients:
//
//   W~_n = ld * M (.) sum_k alpha[n,k] W_k + ls * (1 - M) (.) W_s       (PAD; DY-Conv: M = 1, ld = 1, no W_s)
//
// Nothing of batch size times kernel size is kept: per chunk of samples, `prepare`'s V turns
// kernel assembly into one GEMM (W~ = alpha_ext V), and the per-sample gradients
// G_n = dW~_n of the chunk are contracted at once into
//   A_k = sum_n alpha[n,k] G_n  and  S = sum_n G_n   (one GEMM: A_ext += alpha_ext^T G)
//   dalpha[n,k] = ld <M (.) W_k, G_n>              (one GEMM: G V[0..K]^T)
// and `combine` turns A, S into dW_k, dW_s, dL/dM and the dphi terms. DY-Conv needs neither
// `prepare` nor `combine`: its V is W_k, its alpha_ext alpha, and its A is dW_k.
//
// N = elements of one kernel (O * C/g * kh * kw). Lambda variants (LAMBDA): 0 both
// (ld = 2 sigmoid(phi), ls = 2 - ld), 1 s (ld = 1, ls = 2 - 2 sigmoid(phi)),
// 2 d (ld = 2 sigmoid(phi), ls = 1), 3 none (ld = ls = 1), 4 p (pure pruning: ld = 1, ls = 0).
// PAD = false is DY-Conv (and a split layer's dynamic part).
//
// PAD-MoE (§1.4) mixes experts the same way with the experts as the "kernels": `mix` writes
// every expert's effective weight W~_e = ld M (.) W_e + ls (1 - M) (.) W_s, and `combine` with
// MIX folds the per-expert gradients dW~_e (A_k = dW~_k, S = sum_e dW~_e) the same way.

// F16_OUT = 1: `aggregate*` and `place` store the per-sample kernels as f16, for a convolution
// forward that multiplies in f16 and reads its weights as f16 (docs/architecture.md, "Half
// precision"). The conversion is the one that forward applied to f32 kernels as it loaded
// them, so its results do not change; the kernels take half the bytes to write and to read.
//@for h in 0..F16_OUT
enable f16;
alias Kernel = f16;
//@end
//@for h in F16_OUT..1
alias Kernel = f32;
//@end

// n: kernel elements; batch: samples; padded: n rounded up to whole rows of 256 (dphi terms);
// out_offset: where `aggregate` writes its first kernel (after W_S for split layers).
struct Params { n: u32, k: u32, batch: u32, n_offset: u32, padded: u32, out_offset: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;

override PAD: bool = true;
override LAMBDA: u32 = 0u;
// combine: A holds only the K rows dW~_k; S is their sum (PAD-MoE).
override MIX: bool = false;

//@include sigmoid

// (ld, ls, d ld/d phi, d ls/d phi)
fn lambdas(phi: f32) -> vec4<f32> {
    if (!PAD) { return vec4<f32>(1.0, 1.0, 0.0, 0.0); }
    let s = sigmoid(phi);
    let ds = 2.0 * s * (1.0 - s);
    switch LAMBDA {
        case 0u: { return vec4<f32>(2.0 * s, 2.0 - 2.0 * s, ds, -ds); }
        case 1u: { return vec4<f32>(1.0, 2.0 - 2.0 * s, 0.0, -ds); }
        case 2u: { return vec4<f32>(2.0 * s, 1.0, ds, 0.0); }
        case 4u: { return vec4<f32>(1.0, 0.0, 0.0, 0.0); }
        default: { return vec4<f32>(1.0, 1.0, 0.0, 0.0); }
    }
}

const WG_SIZE: u32 = 256u;
//@include index

// `prepare` and `combine` work on the positions of a kernel one Elem at a time: VEC4 = 1 (N a
// multiple of 4) four of them, as a vec4 load or store costs lavapipe about what one f32 does
// (it loops over the lanes of a divergent access) and GPUs move 16 bytes per lane.
//@for h in 0..VEC4
alias Elem = vec4<f32>;
//@end
//@for h in VEC4..1
alias Elem = f32;
//@end
const ELEM_LEN: u32 = ${1 + 3*VEC4}u;

// ---- prepare (PAD only): V [Ke, N] with V_k = ld M (.) W_k and V_K = ls (1 - M) (.) W_s, and
// alpha_ext = [alpha | 1] [B, Ke]. Then every per-sample kernel is W~_n = alpha_ext_n . V: the
// assembly of a chunk of samples is one GEMM, and V's first K rows are W' for dalpha. DY-Conv's
// V and alpha_ext are its kernels and alpha themselves. ----
@group(0) @binding(1) var<storage, read> pb_alpha: array<f32>;
@group(0) @binding(2) var<storage, read> pb_wk: array<Elem>;
@group(0) @binding(3) var<storage, read> pb_ws: array<Elem>;
@group(0) @binding(4) var<storage, read> pb_mask: array<Elem>;
@group(0) @binding(5) var<storage, read> pb_phi: array<f32>;
@group(0) @binding(6) var<storage, read_write> pb_v: array<Elem>;
@group(0) @binding(7) var<storage, read_write> pb_alpha_ext: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn prepare(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    // One invocation per Elem j of kernel positions, for every row of V (coalesced, mask read
    // once).
    let j = index(wg, nwg, lid);
    let ke = p.k + 1u;
    let n = p.n / ELEM_LEN;
    if (j < n) {
        let l = lambdas(pb_phi[0]);
        let m = pb_mask[j];
        let dynamic = l.x * m;
        for (var k = 0u; k < p.k; k++) { pb_v[k * n + j] = dynamic * pb_wk[k * n + j]; }
        pb_v[p.k * n + j] = l.y * (1.0 - m) * pb_ws[j];
    }
    if (j < p.batch * ke) {
        let b = j / ke;
        let k = j % ke;
        pb_alpha_ext[j] = select(1.0, pb_alpha[b * p.k + min(k, p.k - 1u)], k < p.k);
    }
}

// ---- combine (PAD only): A_ext [K + 1, N] -> dW_k, dW_s, dL/dM, per-element dphi terms (DY-Conv's
// A_ext is dW_k itself) ----
@group(0) @binding(1) var<storage, read> cb_a: array<Elem>;
@group(0) @binding(2) var<storage, read> cb_wk: array<Elem>;
@group(0) @binding(3) var<storage, read> cb_ws: array<Elem>;
@group(0) @binding(4) var<storage, read> cb_mask: array<Elem>;
@group(0) @binding(5) var<storage, read> cb_phi: array<f32>;
@group(0) @binding(6) var<storage, read_write> cb_dwk: array<Elem>;
@group(0) @binding(7) var<storage, read_write> cb_dws: array<Elem>;
@group(0) @binding(8) var<storage, read_write> cb_dmask: array<Elem>;
@group(0) @binding(9) var<storage, read_write> cb_dphi_terms: array<Elem>;

@compute @workgroup_size(WG_SIZE)
fn combine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
    // One invocation per Elem j of kernel positions (`prepare`).
    let j = index(wg, nwg, lid);
    let n = p.n / ELEM_LEN;
    if (j >= n) {
        if (j < p.padded / ELEM_LEN) { cb_dphi_terms[j] = Elem(0.0); }
        return;
    }
    let l = lambdas(cb_phi[0]);
    let m = cb_mask[j];
    let ws = cb_ws[j];
    var wa = Elem(0.0); // sum_k W_k A_k at j
    var sum_a = Elem(0.0);
    for (var k = 0u; k < p.k; k++) {
        let a = cb_a[k * n + j];
        cb_dwk[k * n + j] = l.x * m * a;
        wa += cb_wk[k * n + j] * a;
        sum_a += a;
    }
    var s = sum_a;
    if (!MIX) { s = cb_a[p.k * n + j]; }
    cb_dws[j] = l.y * (1.0 - m) * s;
    cb_dmask[j] = l.x * wa - l.y * ws * s;
    // dphi = dld * sum_j M W.A - ... ; summed over j by the next dispatch.
    cb_dphi_terms[j] = l.z * m * wa + l.w * (1.0 - m) * ws * s;
}

// ---- mix: W~ [K, N], W~_k = ld M (.) W_k + ls (1 - M) (.) W_s (PAD-MoE's effective experts) ----
@group(0) @binding(1) var<storage, read> mx_wk: array<f32>;
@group(0) @binding(2) var<storage, read> mx_ws: array<f32>;
@group(0) @binding(3) var<storage, read> mx_mask: array<f32>;
@group(0) @binding(4) var<storage, read> mx_phi: array<f32>;
@group(0) @binding(5) var<storage, read_write> mx_out: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn mix(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = index(wg, nwg, lid);
    if (j >= p.n) { return; }
    let l = lambdas(mx_phi[0]);
    let m = mx_mask[j];
    let dynamic = l.x * m;
    let fixed = l.y * (1.0 - m) * mx_ws[j];
    for (var k = 0u; k < p.k; k++) { mx_out[k * p.n + j] = dynamic * mx_wk[k * p.n + j] + fixed; }
}

// ---- aggregate: the kernels of samples n_offset .. n_offset + batch, out[b, j] = alpha_ext[b] . V[:, j]
// (where N or out_offset is not whole vec4s; `aggregate4` below otherwise).
// Memory-bound (Ke reads of V per B writes), so no GEMM tiling. A workgroup covers 256 * JPI
// consecutive j of SPB samples; each invocation keeps JPI columns of V (strided by 256, so lanes
// touch contiguous memory) in registers and writes them mixed for each sample, which spreads
// every alpha load over JPI outputs. Template parameters KE, SPB, JPI. ----
@group(0) @binding(1) var<storage, read> ag_v: array<f32>;
@group(0) @binding(2) var<storage, read> ag_alpha_ext: array<f32>;
@group(0) @binding(3) var<storage, read_write> ag_out: array<Kernel>;

@compute @workgroup_size(WG_SIZE)
fn aggregate(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let group = group_index(wg, nwg);
    let jblocks = (p.n + ${256 * JPI - 1}u) / ${256 * JPI}u;
    let jb = (group % jblocks) * ${256 * JPI}u + lid.x;
    let b0 = (group / jblocks) * ${SPB}u;
    if (b0 >= p.batch) { return; }
//@for t in 0..JPI
    let j${t} = min(jb + ${256 * t}u, p.n - 1u);
//@for e in 0..KE
    let v${e}_${t} = ag_v[${e}u * p.n + j${t}];
//@end
//@end
    let b1 = min(b0 + ${SPB}u, p.batch);
    for (var b = b0; b < b1; b++) {
        let a = (p.n_offset + b) * ${KE}u;
//@for e in 0..KE
        let al${e} = ag_alpha_ext[a + ${e}u];
//@end
//@for t in 0..JPI
        var acc${t} = 0.0;
//@for e in 0..KE
        acc${t} += al${e} * v${e}_${t};
//@end
        if (jb + ${256 * t}u < p.n) { ag_out[p.out_offset + b * p.n + j${t}] = Kernel(acc${t}); }
//@end
    }
}

// ---- aggregate4: `aggregate` in vec4s, for N and out_offset multiples of 4 (the plan picks
// it then): `ag_v4` and `ag_out4` alias bindings 1 and 3. One vec4 of V per invocation, mixed
// for SPB samples: a vec4 load or store costs lavapipe about what one f32 does (it loops over
// the lanes of a divergent access), and GPUs move 16 bytes per lane. More vec4s per invocation
// spill on lavapipe (docs/architecture.md, "Kernel assembly"). ----
@group(0) @binding(1) var<storage, read> ag_v4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> ag_out4: array<vec4<Kernel>>;

@compute @workgroup_size(WG_SIZE)
fn aggregate4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let nq = p.n / 4u;
    let group = group_index(wg, nwg);
    let jblocks = (nq + WG_SIZE - 1u) / WG_SIZE;
    let j = (group % jblocks) * WG_SIZE + lid.x;
    let b0 = (group / jblocks) * ${SPB}u;
    if (b0 >= p.batch || j >= nq) { return; }
//@for e in 0..KE
    let v${e} = ag_v4[${e}u * nq + j];
//@end
    let b1 = min(b0 + ${SPB}u, p.batch);
    for (var b = b0; b < b1; b++) {
        let a = (p.n_offset + b) * ${KE}u;
        var acc = vec4<f32>(0.0);
//@for e in 0..KE
        acc += ag_alpha_ext[a + ${e}u] * v${e};
//@end
        ag_out4[p.out_offset / 4u + b * nq + j] = vec4<Kernel>(acc);
    }
}

// ---- aggregate4_sg: `aggregate4` on CPU adapters with subgroups of SGL lanes (SG = 1). There
// each of `aggregate4`'s alpha loads is a loop over the lanes (KE of them per sample for one
// vec4 of output); here lane l loads alpha_ext of samples b0 + l, b0 + l + SGL, ... once and
// each sample's KE values reach every lane by subgroupBroadcast, which touches no memory.
// Lanes past the last vec4 still take part in the broadcasts and store nothing. ----
//@for sg_on in 0..SG
@compute @workgroup_size(WG_SIZE)
fn aggregate4_sg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(subgroup_invocation_id) lane: u32) {
    let nq = p.n / 4u;
    let group = group_index(wg, nwg);
    let jblocks = (nq + WG_SIZE - 1u) / WG_SIZE;
    let j = (group % jblocks) * WG_SIZE + lid.x;
    let b0 = (group / jblocks) * ${SPB}u;
    if (b0 >= p.batch) { return; }
    let jv = min(j, nq - 1u);
//@for e in 0..KE
    let v${e} = ag_v4[${e}u * nq + jv];
//@end
//@for m in 0..SPB/SGL
    let am${m} = (p.n_offset + min(b0 + lane + ${m*SGL}u, p.batch - 1u)) * ${KE}u;
//@for e in 0..KE
    let al${m}_${e} = ag_alpha_ext[am${m} + ${e}u];
//@end
//@end
//@for s in 0..SPB
    if (b0 + ${s}u < p.batch) {
        var acc${s} = vec4<f32>(0.0);
//@for e in 0..KE
        acc${s} += subgroupBroadcast(al${s/SGL}_${e}, ${s%SGL}u) * v${e};
//@end
        if (j < nq) { ag_out4[p.out_offset / 4u + (b0 + ${s}u) * nq + j] = vec4<Kernel>(acc${s}); }
    }
//@end
}
//@end

// ---- place: the first n values of `pl_src` into `pl_dst` (a split PAD-Conv layer's W_S ahead
// of the kernels `aggregate` assembles, conv_rows.wgsl). ----
@group(0) @binding(1) var<storage, read> pl_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> pl_dst: array<Kernel>;

@compute @workgroup_size(WG_SIZE)
fn place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = index(wg, nwg, lid);
    if (i < p.n) { pl_dst[i] = Kernel(pl_src[i]); }
}
