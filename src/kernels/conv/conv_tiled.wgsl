// Workgroup-tiled convolutions for GPUs (`PADNET_CONV=tiled`; docs/architecture.md, "Tiled
// convolutions"): conv.wgsl's `forward` and `grad_input` as implicit GEMMs whose workgroup
// stages a TILE_M x KB tile of the weights and a KB x TILE_N tile of gathered inputs in
// workgroup memory (workgroup_tiles.wgsl), then multiplies its TM x TN blocks out of them as
// matmul_tiled.wgsl does:
//
//   forward_tiled     rows = output channels of the group, cols = (n, oy, ox), k = (ci, ky, kx)
//   grad_input_tiled  rows = input channels of the group,  cols = (n, iy, ix), k = (oc, ky, kx)
//
// Same Params, tiles (`tile_of`), split reductions (`reduction_part`) and outputs as there;
// k runs in the weights' storage order, so the weight tile's loads are contiguous runs of KB
// (forward) or kh·kw (input gradient; of a phase's taps at strides over 1, `Taps`) values, where conv.wgsl's `forward` reads every weight row
// at a stride of kh·kw, once per tap (on an H200, ResNet-18's per-sample 4×4 layers ran at
// 43 GB/s that way). The plan keeps WY a multiple of TN and WX·WY a multiple of KB, so each
// invocation stages the same tile column and the same k of the weight tile in every chunk.
// As in matmul_tiled.wgsl, f16 sums leave for f32 after every chunk (mul_precision.wgsl), f32
// ones once, at the end.
// Every invocation reaches the barriers: only whole workgroups leave early.

//@include conv_common
//@include workgroup_tiles

// The weights of filter `o` (in filters) of sample `split`: shared or per sample.
fn weight_row(o: u32, split: u32) -> u32 {
    return select(0u, split * p.o, PER_SAMPLE) + o;
}

// A workgroup's tile of an output of `rows` channels per group over planes of `plane`
// positions (`tile_of`, its origin: uniform across the workgroup), the columns, its part of
// the reduction over `reduced` channels (`reduction_part`) and, with PHASED, its phase.
struct TiledAt { t: Tile, cols: u32, r: Part, phase: u32 }

fn tiled_at(wg: vec3<u32>, nwg: vec3<u32>, rows: u32, plane: u32, reduced: u32) -> TiledAt {
    var at: TiledAt;
    at.cols = select(p.n * plane, plane, PER_SAMPLE);
    let splits = select(1u, p.n_count, PER_SAMPLE) * max(p.k_splits, 1u) * phases();
    at.t = tile_of(wg, nwg, vec3<u32>(0u), rows, at.cols, splits);
    at.phase = at.t.split % phases();
    at.r = reduction_part(at.t.split / phases(), reduced);
    return at;
}

// The staging column of invocation `tid`, `tile_col` + tid % TILE_N (clamped to the last),
// over planes of `plane` positions (a phase's grid, `phase_pos`): (sample, row, column) of its
// position.
fn staged_column(tid: u32, tile_col: u32, cols: u32, plane: u32, width: u32, split: u32, phase: u32) -> vec3<u32> {
    let q = col_pos(min(tile_col + tid % TILE_N, cols - 1u), plane, split);
    let at = phase_pos(q.y, phase).x;
    return vec3<u32>(q.x, at / width, at % width);
}

// Forward: the weight at k of the row whose weights start at `row_base` (k past the end: 0,
// read at the last k), and the input at k of the staged column (`xb`, `iy0`, `ix0`: its
// sample's channels from the part's first, and its window's corner).
fn forward_weight(row_base: u32, k: u32, k_len: u32) -> Mul {
    return Mul(select(0.0, f32(rhs[row_base + min(k, k_len - 1u)]), k < k_len));
}

fn forward_input(xb: u32, iy0: i32, ix0: i32, k: u32, k_len: u32) -> Mul {
    let khw = p.kh * p.kw;
    let tap = k % khw;
    let iy = iy0 + i32((tap / p.kw) * p.dh);
    let ix = ix0 + i32((tap % p.kw) * p.dw);
    let ok = k < k_len && u32(iy) < p.h && u32(ix) < p.w;
    return Mul(select(0.0, lhs[select(0u, xb + (k / khw) * p.h * p.w + u32(iy) * p.w + u32(ix), ok)], ok));
}

// Each invocation stages the same elements of every chunk: weight rows tid / KB + j·WX·WY / 16
// at k = tid % KB, and input column tid % TILE_N at k = tid / TILE_N + j·WY / TN. It loads the
// next chunk's into registers while the current one is multiplied (stored after the barrier),
// so the loads' latency overlaps the arithmetic.
@compute @workgroup_size(${WX}, ${WY}, 1)
fn forward_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>,
                 @builtin(local_invocation_index) tid: u32) {
    // lhs = x [n, c, h, w], rhs = weight [o, c/g, kh, kw] (PER_SAMPLE: one per sample),
    // out = y [n, o, oh, ow]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let ohw = p.oh * p.ow;
    let hw = p.h * p.w;
    let khw = p.kh * p.kw;
    let at = tiled_at(wg, nwg, og, ohw, cg);
    if (!at.t.valid) { return; }
    let origin = at.t;
    let cols = at.cols;
    let r = at.r;
    let k_len = (r.hi - r.lo) * khw;
    let kk_a = tid % KB;
    let kk_b = tid / TILE_N;
    let s = staged_column(tid, origin.col0, cols, ohw, p.ow, r.sample, 0u);
    let xb = (s.x * p.c + origin.grp * cg + r.lo) * hw;
    let iy0 = i32(s.y * p.sh) - i32(p.ph);
    let ix0 = i32(s.z * p.sw) - i32(p.pw);
//@for j in 0..TM*16/WX
    let wr${j} = weight_row(origin.grp * og + min(origin.row0 + tid / KB + ${j*WX*WY/16}u, og - 1u), r.sample) * cg * khw + r.lo * khw;
    var va${j} = forward_weight(wr${j}, kk_a, k_len);
//@end
//@for j in 0..TN*16/WY
    var vb${j} = forward_input(xb, iy0, ix0, kk_b + ${j*WY/TN}u, k_len);
//@end
//@include gemm_acc
    for (var k0 = 0u; k0 < k_len; k0 += KB) {
//@for j in 0..TM*16/WX
        stage_a(kk_a, tid / KB + ${j*WX*WY/16}u, va${j});
//@end
//@for j in 0..TN*16/WY
        stage_b(kk_b + ${j*WY/TN}u, tid % TILE_N, vb${j});
//@end
        workgroupBarrier();
        let k1 = k0 + KB;
        if (k1 < k_len) {
//@for j in 0..TM*16/WX
            va${j} = forward_weight(wr${j}, k1 + kk_a, k_len);
//@end
//@for j in 0..TN*16/WY
            vb${j} = forward_input(xb, iy0, ix0, k1 + kk_b + ${j*WY/TN}u, k_len);
//@end
        }
//@include workgroup_tile_mul
//@for h in 0..F16
//@include mul_flush
//@end
        workgroupBarrier();
    }
//@include mul_flush
    let out_at = OutBlock(origin.grp, og, origin.row0 + lid.y * ${TM}u, origin.col0 + lid.x, cols, p.o, ohw, r.sample, r.part, 0u);
//@include conv_store
}

// Input gradient: the weight W[oc, row, tap] at k = (oc, tap of `taps`) (k past the end: 0),
// from `w_base`, the part's first filter; and dy at k for the staged column (`db`: its
// sample's channels from the part's first; `ty`, `tx`: its position shifted by the padding),
// where the tap reaches an output position.
fn grad_input_weight(w_base: u32, row: u32, taps: Taps, k: u32, k_len: u32) -> Mul {
    let kc = min(k, max(k_len, 1u) - 1u);
    let tap = tap_at(taps, kc % max(taps.n, 1u));
    let w = lhs[w_base + ((kc / max(taps.n, 1u)) * (p.c / p.groups) + row) * p.kh * p.kw + tap];
    return Mul(select(0.0, w, k < k_len));
}

fn grad_input_dy(db: u32, ty: i32, tx: i32, taps: Taps, k: u32, k_len: u32) -> Mul {
    let n = max(taps.n, 1u);
    let tap = tap_at(taps, k % n);
    let uy = ty - i32((tap / p.kw) * p.dh);
    let ux = tx - i32((tap % p.kw) * p.dw);
    let oy = u32(uy) / SH;
    let ox = u32(ux) / SW;
    let ok = k < k_len && uy >= 0 && ux >= 0 && u32(uy) % SH == 0u && u32(ux) % SW == 0u && oy < p.oh && ox < p.ow;
    return Mul(select(0.0, f32(rhs[select(0u, db + (k / n) * p.oh * p.ow + oy * p.ow + ox, ok)]), ok));
}

// Stages and prefetches as `forward_tiled`; weight rows are input channels.
@compute @workgroup_size(${WX}, ${WY}, 1)
fn grad_input_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_id) lid: vec3<u32>,
                    @builtin(local_invocation_index) tid: u32) {
    // lhs = weight [o, c/g, kh, kw] (PER_SAMPLE: one per sample), rhs = dy [n, o, oh, ow],
    // out = dx [n, c, h, w]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let ohw = p.oh * p.ow;
    let grid = grid_plane();
    let khw = p.kh * p.kw;
    let at = tiled_at(wg, nwg, cg, grid, og);
    if (!at.t.valid) { return; }
    let origin = at.t;
    let cols = at.cols;
    let r = at.r;
    let taps = phase_taps(at.phase);
    let k_len = (r.hi - r.lo) * taps.n;
    let w_base = select(0u, r.sample * p.o * cg * khw, PER_SAMPLE) + (origin.grp * og + r.lo) * cg * khw;
    let kk_a = tid % KB;
    let kk_b = tid / TILE_N;
    let s = staged_column(tid, origin.col0, cols, grid, p.w, r.sample, at.phase);
    let db = (s.x * p.o + origin.grp * og + r.lo) * ohw;
    let ty = i32(s.y + p.ph);
    let tx = i32(s.z + p.pw);
//@for j in 0..TM*16/WX
    let row${j} = min(origin.row0 + tid / KB + ${j*WX*WY/16}u, cg - 1u);
    var va${j} = grad_input_weight(w_base, row${j}, taps, kk_a, k_len);
//@end
//@for j in 0..TN*16/WY
    var vb${j} = grad_input_dy(db, ty, tx, taps, kk_b + ${j*WY/TN}u, k_len);
//@end
//@include gemm_acc
    for (var k0 = 0u; k0 < k_len; k0 += KB) {
//@for j in 0..TM*16/WX
        stage_a(kk_a, tid / KB + ${j*WX*WY/16}u, va${j});
//@end
//@for j in 0..TN*16/WY
        stage_b(kk_b + ${j*WY/TN}u, tid % TILE_N, vb${j});
//@end
        workgroupBarrier();
        let k1 = k0 + KB;
        if (k1 < k_len) {
//@for j in 0..TM*16/WX
            va${j} = grad_input_weight(w_base, row${j}, taps, k1 + kk_a, k_len);
//@end
//@for j in 0..TN*16/WY
            vb${j} = grad_input_dy(db, ty, tx, taps, k1 + kk_b + ${j*WY/TN}u, k_len);
//@end
        }
//@include workgroup_tile_mul
//@for h in 0..F16
//@include mul_flush
//@end
        workgroupBarrier();
    }
//@include mul_flush
    let out_at = OutBlock(origin.grp, cg, origin.row0 + lid.y * ${TM}u, origin.col0 + lid.x, cols, p.c, grid, r.sample, r.part, at.phase);
//@include conv_store
}
