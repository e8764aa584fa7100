// 2-D convolution, NCHW, with stride, padding, dilation and groups — forward, input gradient and
// weight gradient, each an implicit GEMM (no im2col buffer) with the register blocking of
// matmul.wgsl (template parameters TM, TN, WX, WY; see src/gpu/template.rs):
//
//   forward      rows = output channels of the group, cols = (n, oy, ox),  k = (ky, kx, ci)
//   grad_input   rows = input channels of the group,  cols = (n, iy, ix),  k = (ky, kx, oc)
//   grad_weight  rows = output channels of the group, cols = (ci, ky, kx),  k = (n, oy, ox)
//
// Per-sample weights (PER_SAMPLE) tile each sample separately; on CPU adapters their forward
// may instead run transposed (`forward_t`: positions as rows) or with samples as lanes
// (`forward_s`: each invocation a block of filters x positions of one sample), and 3×3
// kernels at stride 1, per sample or not, as a sliding window (`forward_w`: samples as lanes,
// each input loaded once for the nine taps), all in conv_forward.wgsl, as
// `conv::forward_call` chooses; `forward_w` with FLIP also computes those layers' input
// gradients (`conv::grad_input_call`).
//
// forward and grad_input loop over kernel taps outside and channels inside, so each column's
// address and padding mask are computed once per tap. Out-of-range rows/columns are clamped on
// load and masked on store; padding taps read a clamped in-range address and are zeroed, so no
// load is ever out of bounds.

//@include conv_common

// Filter `o`'s weights (in filters): the shared weight's row, or with PER_SAMPLE sample `split`'s.
fn weight_row(o: u32, split: u32) -> u32 {
    return select(0u, split * p.o, PER_SAMPLE) + o;
}

// `forward_w`'s rows in weight order (conv_rows.wgsl reorders them): row j is filter j.
fn stored_row(j: u32, split: u32) -> u32 { return weight_row(j, split); }
fn stored_filter(j: u32) -> u32 { return j; }

//@include conv_forward

// With RB = 1 (CPU adapters whose subgroups are WX lanes, `conv::with_row_broadcast`) the
// workgroup is 1-D, invocations are placed by subgroup ids (subgroup_place.wgsl), and the TM
// weights every step reads, the same for the WX lanes of a row, are loaded WX at a time and
// reach the row by subgroupBroadcast (docs/architecture.md, "Kernel assembly": lavapipe loops
// over the lanes of every load whose address it cannot prove uniform).
//@for rb_off in 0..1-RB
@compute @workgroup_size(${WX}, ${WY}, 1)
fn grad_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
//@end
//@for rb_on in 0..RB
@compute @workgroup_size(${WX*WY}, 1, 1)
fn grad_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
              @builtin(subgroup_invocation_id) lane: u32) {
//@include subgroup_place
//@end
    // lhs = weight [o, c/g, kh, kw], rhs = dy [n, o, oh, ow], out = dx [n, c, h, w]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let grid = grid_plane();
    let cols = select(p.n * grid, grid, PER_SAMPLE);
    let splits = select(1u, p.n_count, PER_SAMPLE) * max(p.k_splits, 1u) * phases();
    let t = tile_of(wg, nwg, lid, cg, cols, splits);
//@for rb_off in 0..1-RB
    if (!t.valid) { return; }
//@end
//@for rb_on in 0..RB
    // Only whole rows leave: lanes past the last column serve the broadcasts (their columns
    // are clamped on load and masked on store).
    if (t.split >= splits || t.row0 >= cg) { return; }
//@end
    let phase = t.split % phases();
    let r = reduction_part(t.split / phases(), og);
    let ohw = p.oh * p.ow;
    let khw = p.kh * p.kw;
    let w_base = select(0u, r.sample * p.o * cg * khw, PER_SAMPLE);
//@for rb_off in 0..1-RB
//@for i in 0..TM
    let wo${i} = w_base + (t.grp * og * cg + min(t.row0 + ${i}u, cg - 1u)) * khw;
//@end
//@end
//@for rb_on in 0..RB
    // Lane l loads the weights of rows l, l + WX, … of the block.
//@for m in 0..(TM+WX-1)/WX
    let wb${m} = w_base + (t.grp * og * cg + min(t.row0 + min(${WX*m}u + lid.x, ${TM-1}u), cg - 1u)) * khw;
//@end
//@end
//@for j in 0..TN
    let q${j} = col_pos(min(t.col0 + ${WX*j}u, cols - 1u), grid, r.sample);
    let s${j} = phase_pos(q${j}.y, phase).x;
    let db${j} = (q${j}.x * p.o + t.grp * og) * ohw;
    let ty${j} = i32(s${j} / p.w + p.ph);
    let tx${j} = i32(s${j} % p.w + p.pw);
//@end
//@for i in 0..TM
//@for v in 0..TN/4
    var acc${i}_${v} = vec4<f32>(0.0);
//@end
//@end
    let taps = phase_taps(phase);
    for (var ky = taps.y0; ky < p.kh; ky += taps.sy) {
        let dy = i32(ky * p.dh);
        for (var kx = taps.x0; kx < p.kw; kx += taps.sx) {
            let dx = i32(kx * p.dw);
            // Output position (oy, ox) reading input (iy, ix) through this tap, if any.
//@for j in 0..TN
            let uy${j} = ty${j} - dy;
            let ux${j} = tx${j} - dx;
            let oy${j} = u32(uy${j}) / SH;
            let ox${j} = u32(ux${j}) / SW;
            let ok${j} = uy${j} >= 0 && ux${j} >= 0 && u32(uy${j}) % SH == 0u && u32(ux${j}) % SW == 0u && oy${j} < p.oh && ox${j} < p.ow;
            let da${j} = select(0u, db${j} + oy${j} * p.ow + ox${j}, ok${j});
//@end
//@for v in 0..TN/4
            let m${v} = select(vec4<f32>(0.0), vec4<f32>(1.0), vec4<bool>(ok${4*v}, ok${4*v+1}, ok${4*v+2}, ok${4*v+3}));
//@end
            let tap = ky * p.kw + kx;
            for (var oc = r.lo; oc < r.hi; oc++) {
                let off = oc * ohw;
//@for v in 0..TN/4
                let b${v} = m${v} * vec4<f32>(vec4<BElem>(rhs[da${4*v} + off], rhs[da${4*v+1} + off], rhs[da${4*v+2} + off], rhs[da${4*v+3} + off]));
//@end
                let wk = oc * cg * khw + tap;
//@for rb_off in 0..1-RB
//@for i in 0..TM
                let a${i} = vec4<f32>(lhs[wo${i} + wk]);
//@end
//@end
//@for rb_on in 0..RB
//@for m in 0..(TM+WX-1)/WX
                let wl${m} = lhs[wb${m} + wk];
//@end
//@for i in 0..TM
                let a${i} = vec4<f32>(subgroupBroadcast(wl${i/WX}, ${i%WX}u));
//@end
//@end
//@for i in 0..TM
//@for v in 0..TN/4
                acc${i}_${v} = fma(a${i}, b${v}, acc${i}_${v});
//@end
//@end
            }
        }
    }
    let out_at = OutBlock(t.grp, cg, t.row0, t.col0, cols, p.c, grid, r.sample, r.part, phase);
//@include conv_store
}

// The transposed input gradient (PER_SAMPLE only), as `forward_t` (conv_forward.wgsl).
// Input channel `col` of group `grp` at row `row` of the grid of `phase` (`phase_pos`) of
// sample `split`.
fn put_input_t(grp: u32, col: u32, cg: u32, row: u32, split: u32, phase: u32, v: f32) {
    let at = phase_pos(row, phase);
    if (row < grid_plane() && at.y == 1u && col < cg) {
        out[((p.n_offset + split) * p.c + grp * cg + col) * p.h * p.w + at.x] = v;
    }
}

//@for rb_off in 0..1-RB
@compute @workgroup_size(${WX}, ${WY}, 1)
fn grad_input_t(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
//@end
//@for rb_on in 0..RB
@compute @workgroup_size(${WX*WY}, 1, 1)
fn grad_input_t(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
//@include subgroup_place
//@end
    // lhs = weights [n_count, o, c/g, kh, kw], rhs = dy [n, o, oh, ow], out = dx [n, c, h, w]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let grid = grid_plane();
    let t = tile_of(wg, nwg, lid, grid, cg, p.n_count * phases());
//@for rb_off in 0..1-RB
    if (!t.valid) { return; }
//@end
//@for rb_on in 0..RB
    if (t.split >= p.n_count * phases() || t.row0 >= grid) { return; }
//@end
    let phase = t.split % phases();
    let sample = t.split / phases();
    let ohw = p.oh * p.ow;
    let khw = p.kh * p.kw;
    let db = ((p.n_offset + sample) * p.o + t.grp * og) * ohw;
    let w_base = sample * p.o * cg * khw;
    // The positions whose dy this invocation loads (`forward_t`'s rows).
//@for i in 0..(TM+WX-1)/WX*RB+TM*(1-RB)
    let s${i} = phase_pos(min(t.row0 + min(${WX*i*RB+i*(1-RB)}u + lid.x * ${RB}u, ${TM-1}u), grid - 1u), phase).x;
    let ty${i} = i32(s${i} / p.w + p.ph);
    let tx${i} = i32(s${i} % p.w + p.pw);
//@end
//@for j in 0..TN
    let wo${j} = w_base + (t.grp * og * cg + min(t.col0 + ${WX*j}u, cg - 1u)) * khw;
//@end
//@for i in 0..TM
//@for v in 0..TN/4
    var acc${i}_${v} = vec4<f32>(0.0);
//@end
//@end
    let taps = phase_taps(phase);
    for (var ky = taps.y0; ky < p.kh; ky += taps.sy) {
        let dy = i32(ky * p.dh);
        for (var kx = taps.x0; kx < p.kw; kx += taps.sx) {
            let dx = i32(kx * p.dw);
//@for i in 0..(TM+WX-1)/WX*RB+TM*(1-RB)
            let uy${i} = ty${i} - dy;
            let ux${i} = tx${i} - dx;
            let oy${i} = u32(uy${i}) / SH;
            let ox${i} = u32(ux${i}) / SW;
            let ok${i} = uy${i} >= 0 && ux${i} >= 0 && u32(uy${i}) % SH == 0u && u32(ux${i}) % SW == 0u && oy${i} < p.oh && ox${i} < p.ow;
            let da${i} = select(0u, db + oy${i} * p.ow + ox${i}, ok${i});
//@end
            let tap = ky * p.kw + kx;
            for (var oc = 0u; oc < og; oc++) {
                let off = oc * ohw;
                let wk = oc * cg * khw + tap;
//@for v in 0..TN/4
                let b${v} = vec4<f32>(lhs[wo${4*v} + wk], lhs[wo${4*v+1} + wk], lhs[wo${4*v+2} + wk], lhs[wo${4*v+3} + wk]);
//@end
//@for i in 0..(TM+WX-1)/WX*RB+TM*(1-RB)
                let r${i} = select(0.0, rhs[da${i} + off], ok${i});
//@end
//@for i in 0..TM
//@for rb_off in 0..1-RB
                let a${i} = vec4<f32>(f32(r${i}));
//@end
//@for rb_on in 0..RB
                let a${i} = vec4<f32>(f32(subgroupBroadcast(r${i/WX}, ${i%WX}u)));
//@end
//@for v in 0..TN/4
                acc${i}_${v} = fma(a${i}, b${v}, acc${i}_${v});
//@end
//@end
            }
        }
    }
//@for i in 0..TM
//@for v in 0..TN/4
    put_input_t(t.grp, t.col0 + ${WX*4*v}u, cg, t.row0 + ${i}u, sample, phase, acc${i}_${v}.x);
    put_input_t(t.grp, t.col0 + ${WX*(4*v+1)}u, cg, t.row0 + ${i}u, sample, phase, acc${i}_${v}.y);
    put_input_t(t.grp, t.col0 + ${WX*(4*v+2)}u, cg, t.row0 + ${i}u, sample, phase, acc${i}_${v}.z);
    put_input_t(t.grp, t.col0 + ${WX*(4*v+3)}u, cg, t.row0 + ${i}u, sample, phase, acc${i}_${v}.w);
//@end
//@end
}

fn put_weight(row_off: u32, col: u32, cols: u32, v: f32) {
    if (col < cols) { out[row_off + col] = v; }
}

// With SG = 1 (devices with subgroups, see conv_wgrad_sample.wgsl) the workgroup is 1-D and
// invocations are placed by subgroup ids (subgroup_place.wgsl).
//@for sg_off in 0..1-SG
@compute @workgroup_size(${WX}, ${WY}, 1)
fn grad_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
//@end
//@for sg_on in 0..SG
@compute @workgroup_size(${WX*WY}, 1, 1)
fn grad_weight(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
               @builtin(subgroup_invocation_id) lane: u32) {
//@include subgroup_place
//@end
    // x [n, c, h, w], dy [n, o, oh, ow] (the lhs and rhs bindings),
    // out = dw [o, c/g, kh, kw], or with split-K partial sums [splits, o, c/g, kh, kw]
    // (n_per_split = 1 gives per-sample gradients of samples n_offset .. n_offset + n_count)
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let khw = p.kh * p.kw;
    let cols = cg * khw;
    let splits = (p.n_count + p.n_per_split - 1u) / p.n_per_split;
    let t = tile_of(wg, nwg, lid, og, cols, splits);
//@for sg_off in 0..1-SG
    if (!t.valid) { return; }
//@end
//@for sg_on in 0..SG
    // Only whole rows of invocations may leave: the others serve each other's shuffles.
    if (t.split >= splits || t.row0 >= og) { return; }
//@end
    let grp = t.grp;
    let col0 = t.col0;
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;
//@for i in 0..TM
    let do${i} = (grp * og + min(t.row0 + ${i}u, og - 1u)) * ohw;
//@end
//@include conv_columns
//@for i in 0..TM
//@for q in 0..TN/4
    var g${i}_${q} = vec4<f32>(0.0);
//@end
//@end
    let n0 = p.n_offset + t.split * p.n_per_split;
    let n1 = min(n0 + p.n_per_split, p.n_offset + p.n_count);
    for (var nn = n0; nn < n1; nn++) {
        let xn = nn * p.c * hw;
        let dn = nn * p.o * ohw;
//@include conv_wgrad_sample
    }
    let split_off = t.split * p.o * cols;
//@for i in 0..TM
    if (t.row0 + ${i}u < og) {
        let ro = split_off + (t.grp * og + t.row0 + ${i}u) * cols;
//@for v in 0..TN/4
        put_weight(ro, t.col0 + ${WX*4*v}u, cols, g${i}_${v}.x);
        put_weight(ro, t.col0 + ${WX*(4*v+1)}u, cols, g${i}_${v}.y);
        put_weight(ro, t.col0 + ${WX*(4*v+2)}u, cols, g${i}_${v}.z);
        put_weight(ro, t.col0 + ${WX*(4*v+3)}u, cols, g${i}_${v}.w);
//@end
    }
//@end
}

// ---- Sliding-window weight gradient (CPU adapters with subgroups, 3×3 kernels at stride 1
// and dilation 1; docs/architecture.md, "The sliding window"). `grad_weight` gathers each
// position's TN columns (ci, ky, kx) one by one, nine loads per input value over its taps.
// Here invocation (filters row0 .. row0 + TM, input channels col0 + WX·j) keeps all nine taps
// of its channels and walks each output row left to right with the 3 × 3 inputs under the
// position in registers: per step it loads the one new column (three values per channel), and
// dy's TM values come by shuffle as in `grad_weight` (conv_wgrad_sample.wgsl), so a step is
// 9·TM·TN FMAs for 3·TN loads and TM/4 shuffles. Lanes are input channels; those past the end
// keep serving the shuffles and store nothing.
//@for sg_on in 0..SG
@compute @workgroup_size(${WX*WY}, 1, 1)
fn grad_weight_w(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
                 @builtin(subgroup_invocation_id) lane: u32) {
    // x [n, c, h, w], dy [n, o, oh, ow]; out = dw [o, c/g, 3, 3], or partial sums
    // [splits, o, c/g, 3, 3] (tiles_n = column tiles of TN·WX channels)
//@include subgroup_place
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let splits = (p.n_count + p.n_per_split - 1u) / p.n_per_split;
    let t = tile_of(wg, nwg, lid, og, cg, splits);
    if (t.split >= splits || t.row0 >= og) { return; }
    let hw = p.h * p.w;
    let ohw = p.oh * p.ow;
//@for i in 0..TM
    let do${i} = (t.grp * og + min(t.row0 + ${i}u, og - 1u)) * ohw;
//@end
//@for j in 0..TN
    let xo${j} = (t.grp * cg + min(t.col0 + ${WX*j}u, cg - 1u)) * hw;
//@end
//@for q in 0..TM/4
//@for j in 0..TN
//@for k in 0..9
    var g${q}_${j}_${k} = vec4<f32>(0.0);
//@end
//@end
//@end
    let n0 = p.n_offset + t.split * p.n_per_split;
    let n1 = min(n0 + p.n_per_split, p.n_offset + p.n_count);
    for (var nn = n0; nn < n1; nn++) {
        let xn = nn * p.c * hw;
        let dn = nn * p.o * ohw;
//@include conv_wgrad_window
    }
    let split_off = t.split * p.o * cg * 9u;
//@for q in 0..TM/4
    let left${q} = og - min(og, t.row0 + ${4*q}u);
//@for j in 0..TN
    if (t.col0 + ${WX*j}u < cg) {
        let wb${q}_${j} = split_off + ((t.grp * og + t.row0 + ${4*q}u) * cg + t.col0 + ${WX*j}u) * 9u;
//@for k in 0..9
        put_filters(wb${q}_${j} + ${k}u, cg * 9u, left${q}, g${q}_${j}_${k});
//@end
    }
//@end
//@end
}
//@end

// Filters f .. f + 3 of a weight gradient at `at` (filters `stride` apart), those below `left`.
fn put_filters(at: u32, stride: u32, left: u32, v: vec4<f32>) {
    if (left > 0u) { out[at] = v.x; }
    if (left > 1u) { out[at + stride] = v.y; }
    if (left > 2u) { out[at + 2u * stride] = v.z; }
    if (left > 3u) { out[at + 3u * stride] = v.w; }
}

// ---- Depthwise weight gradient (one filter over one input channel per group, as
// MobileNetV2's 3×3 layers). `grad_weight` would give each channel's 1 × kh·kw output its own
// workgroup, whose lanes split the kh·kw columns (3 of 8 busy on lavapipe) while it walks
// every position in turn. Here the lanes are channels: invocation (split, channel) sums that
// channel's taps (TN ≥ kh·kw of them, the rest masked) over the samples of its split into
// partial sums [splits, c, kh·kw], which the plan adds up.
@compute @workgroup_size(64, 1, 1)
fn grad_weight_dw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let count = p.n_count;
//@include dw_wgrad_place
//@for j in 0..TN
    var g${j} = 0.0;
//@end
    let n0 = p.n_offset + split * p.n_per_split;
    let n1 = min(n0 + p.n_per_split, p.n_offset + p.n_count);
    for (var nn = n0; nn < n1; nn++) {
        let xb = (nn * p.c + ch) * hw;
        let db = (nn * p.o + ch) * ohw;
//@include conv_dw_wgrad
    }
    let o = (split * p.o + ch) * khw;
//@for j in 0..TN
    if (${j}u < khw) { out[o + ${j}u] = g${j}; }
//@end
}

// ---- Depthwise forward and input gradient on CPU adapters (groups = c = o, multiplier 1).
// `forward` and `grad_input` give a group's single channel a register block of clamped copies
// and walk its kh·kw taps as the reduction. Here each invocation computes one row of one plane
// (the index arithmetic, integer divisions that a CPU does lane by lane, once per row) with
// the taps unrolled (TN ≥ kh·kw of them, the rest weighted 0; the input gradient by phases:
// TN ≥ a phase's taps) and their weights in registers; neighbouring lanes are neighbouring
// rows.
// The weights of plane `plane` (sample plane / c of the range, channel plane % c).
fn dw_weight(plane: u32, khw: u32) -> u32 {
    return select(plane % p.c, plane, PER_SAMPLE) * khw;
}

@compute @workgroup_size(64, 1, 1)
fn forward_dw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    // lhs = x [n, c, h, w], rhs = weight [c, 1, kh, kw] (PER_SAMPLE: [n_count, c, 1, kh, kw]),
    // out = y [n, c, oh, ow]; rows of samples n_offset .. n_offset + n_count.
    let row = group_index(wg, nwg) * 64u + li;
    if (row >= p.n_count * p.c * p.oh) { return; }
    let khw = p.kh * p.kw;
    let wb = dw_weight(row / p.oh, khw);
    let plane = p.n_offset * p.c + row / p.oh;
    let iy_base = i32((row % p.oh) * p.sh) - i32(p.ph);
//@for j in 0..TN
    let t${j} = min(${j}u, khw - 1u);
    let w${j} = select(0.0, f32(rhs[wb + t${j}]), ${j}u < khw);
    let iy${j} = iy_base + i32((t${j} / p.kw) * p.dh);
    let oky${j} = u32(iy${j}) < p.h;
    let xr${j} = plane * p.h * p.w + select(0u, u32(iy${j}) * p.w, oky${j});
    let fx${j} = i32((t${j} % p.kw) * p.dw) - i32(p.pw);
//@end
    for (var ox = 0u; ox < p.ow; ox++) {
        let ix_base = i32(ox * p.sw);
        var acc = 0.0;
//@for j in 0..TN
        let ix${j} = ix_base + fx${j};
        let ok${j} = oky${j} && u32(ix${j}) < p.w;
        acc = fma(select(0.0, lhs[xr${j} + select(0u, u32(ix${j}), ok${j})], ok${j}), w${j}, acc);
//@end
        out[(plane * p.oh + row % p.oh) * p.ow + ox] = acc;
    }
}

@compute @workgroup_size(64, 1, 1)
fn grad_input_dw(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) li: u32) {
    // lhs = weight as in forward_dw, rhs = dy [n, c, oh, ow], out = dx [n, c, h, w]
    let row = group_index(wg, nwg) * 64u + li;
    if (row >= p.n_count * p.c * p.h) { return; }
    let khw = p.kh * p.kw;
    let wb = dw_weight(row / p.h, khw);
    let plane = p.n_offset * p.c + row / p.h;
    let ty = i32(row % p.h + p.ph);
    // With PHASED (strides over 1, dilation 1) the row's columns go phase by phase (ix mod SW),
    // each with only the taps that reach it (`phase_taps`): TN is then the most taps of a phase.
    for (var px = 0u; px < select(1u, SW, PHASED); px++) {
        let taps = phase_taps((row % p.h % SH) * SW + px);
        // Tap j reaches output row oy (if any) and column ox = (ix + pw - fx) / SW.
//@for j in 0..TN
        let t${j} = select(min(${j}u, khw - 1u), tap_at(taps, ${j}u), PHASED);
        let live${j} = ${j}u < select(khw, taps.n, PHASED);
        let w${j} = select(0.0, lhs[wb + select(0u, t${j}, live${j})], live${j});
        let uy${j} = ty - i32((t${j} / p.kw) * p.dh);
        let oy${j} = u32(uy${j}) / SH;
        let oky${j} = live${j} && uy${j} >= 0 && u32(uy${j}) % SH == 0u && oy${j} < p.oh;
        let dr${j} = plane * p.oh * p.ow + select(0u, oy${j} * p.ow, oky${j});
        let fx${j} = i32((t${j} % p.kw) * p.dw) - i32(p.pw);
//@end
        for (var ix = select(0u, px, PHASED); ix < p.w; ix += select(1u, SW, PHASED)) {
            var acc = 0.0;
//@for j in 0..TN
            let ux${j} = i32(ix) - fx${j};
            let ox${j} = u32(ux${j}) / SW;
            let ok${j} = oky${j} && ux${j} >= 0 && u32(ux${j}) % SW == 0u && ox${j} < p.ow;
            acc = fma(select(0.0, f32(rhs[dr${j} + select(0u, ox${j}, ok${j})]), ok${j}), w${j}, acc);
//@end
            out[(plane * p.h + row % p.h) * p.w + ix] = acc;
        }
    }
}
