// The forward convolution entries (`forward`, `forward_s`, `forward_w`, `forward_t`), shared by
// conv.wgsl and conv_rows.wgsl: each shader says where a filter's weights are (`weight_row`).

// With RB = 1, `forward` loads the weights a row of WX lanes shares once and broadcasts them,
// as conv.wgsl's `grad_input` does (placement by subgroup ids; only whole rows leave; lanes
// past the last column serve the broadcasts). `forward_s` never does: its lanes are samples.
//@for rb_off in 0..1-RB
@compute @workgroup_size(${WX}, ${WY}, 1)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_id) lid: vec3<u32>) {
//@end
//@for rb_on in 0..RB
@compute @workgroup_size(${WX*WY}, 1, 1)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
           @builtin(subgroup_invocation_id) lane: u32) {
//@include subgroup_place
//@end
    // lhs = x [n, c, h, w], rhs = weight [o, c/g, kh, kw], out = y [n, o, oh, ow]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let ohw = p.oh * p.ow;
    let cols = select(p.n * ohw, ohw, PER_SAMPLE);
    let splits = select(1u, p.n_count, PER_SAMPLE) * max(p.k_splits, 1u);
    let t = tile_of(wg, nwg, lid, og, cols, splits);
//@for rb_off in 0..1-RB
    if (!t.valid) { return; }
//@end
//@for rb_on in 0..RB
    if (t.split >= splits || t.row0 >= og) { return; }
//@end
    let r = reduction_part(t.split, cg);
    let c_lo = r.lo;
    let c_hi = r.hi;
    let hw = p.h * p.w;
    let khw = p.kh * p.kw;
//@for rb_off in 0..1-RB
//@for i in 0..TM
    let wo${i} = weight_row(t.grp * og + min(t.row0 + ${i}u, og - 1u), r.sample) * cg * khw;
//@end
//@end
//@for rb_on in 0..RB
    // Lane l loads the weights of rows l, l + WX, … of the block.
//@for m in 0..(TM+WX-1)/WX
    let wb${m} = weight_row(t.grp * og + min(t.row0 + min(${WX*m}u + lid.x, ${TM-1}u), og - 1u), r.sample) * cg * khw;
//@end
//@end
//@for j in 0..TN
    let q${j} = col_pos(min(t.col0 + ${WX*j}u, cols - 1u), ohw, r.sample);
    let xb${j} = (q${j}.x * p.c + t.grp * cg) * hw;
    let iy${j} = i32((q${j}.y / p.ow) * p.sh) - i32(p.ph);
    let ix${j} = i32((q${j}.y % p.ow) * p.sw) - i32(p.pw);
//@end
//@include gemm_acc
//@include conv_forward_taps
//@include mul_flush
    let out_at = OutBlock(t.grp, og, t.row0, t.col0, cols, p.o, ohw, r.sample, r.part, 0u);
//@include conv_store
}

// ---- Samples as lanes (PER_SAMPLE only): each invocation computes TM filters at TN
// consecutive positions of one sample, and the WX lanes of a workgroup row are WX samples. A
// per-sample convolution over few positions (16 at 4×4) or few filters (a split layer's dynamic
// part) then fills its register blocks, where one sample's positions spread over the lanes would
// leave most of each block clamped copies.

// The tile of an entry with samples as lanes (`forward_s`, `forward_w`): tiles ordered (group,
// block of WX samples, row tile, chunk of positions), lane x of a row sample x of the block;
// `col0` is the chunk.
fn lane_tile(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, og: u32) -> Tile {
    let tile = group_index(wg, nwg);
    let row_tiles = (og + ${TM*WY-1}u) / ${TM*WY}u;
    let sample_blocks = (p.n_count + ${WX-1}u) / ${WX}u;
    var t: Tile;
    t.col0 = tile % p.tiles_n;
    t.row0 = ((tile / p.tiles_n) % row_tiles) * ${TM*WY}u + lid.y * ${TM}u;
    let rest = tile / (p.tiles_n * row_tiles);
    t.grp = rest / sample_blocks;
    t.split = (rest % sample_blocks) * ${WX}u + lid.x;
    t.valid = t.split < p.n_count && t.grp < p.groups && t.row0 < og;
    return t;
}

//@for rb_off in 0..1-RB
@compute @workgroup_size(${WX}, ${WY}, 1)
fn forward_s(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    // lhs = x [n, c, h, w], rhs = weights (weight_row), out = y [n, o, oh, ow];
    // tiles_n = position chunks of TN.
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let ohw = p.oh * p.ow;
    let t = lane_tile(wg, nwg, lid, og);
    if (!t.valid) { return; }
    let grp = t.grp;
    let row0 = t.row0;
    let chunk = t.col0;
    let split = t.split;
    let hw = p.h * p.w;
    let khw = p.kh * p.kw;
    let pos0 = chunk * ${TN}u;
    let c_lo = 0u;
    let c_hi = cg;
//@for i in 0..TM
    let wo${i} = weight_row(grp * og + min(row0 + ${i}u, og - 1u), split) * cg * khw;
//@end
//@for j in 0..TN
    let xb${j} = ((p.n_offset + split) * p.c + grp * cg) * hw;
    let iy${j} = i32((min(pos0 + ${j}u, ohw - 1u) / p.ow) * p.sh) - i32(p.ph);
    let ix${j} = i32((min(pos0 + ${j}u, ohw - 1u) % p.ow) * p.sw) - i32(p.pw);
//@end
//@include gemm_acc
//@include conv_forward_taps
//@include mul_flush
    let yb = ((p.n_offset + split) * p.o + grp * og + row0) * ohw + pos0;
//@for i in 0..TM
    if (row0 + ${i}u < og) {
//@for v in 0..TN/4
        put_forward_s(yb + ${i}u * ohw, pos0, ${4*v}u, ohw, acc${i}_${v});
//@end
    }
//@end
}
//@end

// ---- Sliding window (CPU adapters, 3×3 kernels at stride 1 and dilation 1; docs/architecture.md,
// "The sliding window"): samples as lanes, each invocation TM filters at RY × TW neighbouring
// positions of one sample (TW = TN / RY columns of RY output rows). Per input channel it loads
// the (RY + 2) × (TW + 2) inputs under its block once and uses them for all nine taps, where
// `forward` loads 9·TN; lavapipe pays per load, not per FMA. With FLIP it computes a 3×3
// stride-1 layer's input gradient (`conv::grad_input_call`).

// The tile of `forward_w` with chunks as lanes (WC = 1, per-sample weights only): tiles
// ordered (group, sample, row tile, block of WX chunks), lane x chunk x of the block, so that
// every lane of a subgroup reads the same sample's weights and they can be broadcast like
// shared ones (`conv::window_call`). `col0` is the chunk (past the last: not `valid`).
fn chunk_tile(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> Tile {
    let tile = group_index(wg, nwg);
    let row_tiles = (p.tile_rows + ${TM-1}u) / ${TM}u;
    let chunk_blocks = (p.tiles_n + ${WX-1}u) / ${WX}u;
    var t: Tile;
    t.col0 = (tile % chunk_blocks) * ${WX}u + lid.x;
    t.row0 = ((tile / chunk_blocks) % row_tiles) * ${TM}u;
    let rest = tile / (chunk_blocks * row_tiles);
    t.split = rest % p.n_count;
    t.grp = rest / p.n_count;
    t.valid = t.col0 < p.tiles_n;
    return t;
}

@compute @workgroup_size(${WX}, ${WY}, 1)
fn forward_w(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
//@for wb in 0..(WS+TM-1)/TM
             @builtin(subgroup_invocation_id) lane: u32,
//@end
             @builtin(local_invocation_id) lid: vec3<u32>) {
    // tiles_n = row groups · row chunks.
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let ohw = p.oh * p.ow;
    var t: Tile;
    var live: bool;
    if (${WC}u == 1u) {
        t = chunk_tile(wg, nwg, lid);
        live = t.valid;
    } else {
        t = lane_tile(wg, nwg, lid, p.tile_rows);
        live = t.split < p.n_count;
    }
    // Lanes past the last sample or chunk stay (they load weights for the others with WS > 0)
    // and store nothing.
    if (t.grp >= p.groups || t.row0 >= p.tile_rows) { return; }
    let grp = t.grp;
    let row0 = t.row0;
    let chunk = min(t.col0, p.tiles_n - 1u);
    let split = min(t.split, p.n_count - 1u);
    let hw = p.h * p.w;
    let khw = p.kh * p.kw;
    let row_chunks = (p.ow + ${TN/RY-1}u) / ${TN/RY}u;
    let oy0 = (chunk / row_chunks) * ${RY}u;
    let ox0 = (chunk % row_chunks) * ${TN/RY}u;
    // The tile's weight rows (`stored_row`, in its group): its first WS rows are rows
    // tile·WS .. of the `shared_rows` every sample reads (broadcast), the other TM − WS rows
    // tile·(TM − WS) .. of the rest (`conv::window_call`). `keep`: a row of the layer, not
    // padding; rows past the end read the last.
    let tile = row0 / ${TM}u;
    let shared_rows = p.shared_rows;
//@for i in 0..WS
    let keep${i} = tile * ${WS}u + ${i}u < shared_rows;
    let j${i} = min(tile * ${WS}u + ${i}u, shared_rows - 1u);
//@end
//@for i in WS..TM
    let keep${i} = shared_rows + tile * ${TM-WS}u + ${i-WS}u < og;
    let j${i} = min(shared_rows + tile * ${TM-WS}u + ${i-WS}u, og - 1u);
    let wo${i} = window_weight(grp, j${i}, split, cg, og, khw);
//@end
//@for k in 0..9
    let tap${k} = select(${k}u, ${8-k}u, FLIP);
//@end
    // The 9·WS broadcast weights of a channel, f = 9·i + k, are loaded WX at a time,
    // f = WX·m + lane, and reach every lane by subgroupBroadcast (a workgroup of one subgroup
    // of WX lanes), where each lane would load all of them (lavapipe loops over the lanes of
    // every load, docs/architecture.md, "Kernel assembly").
//@for m in 0..(9*WS+WX-1)/WX
    let wpos${m} = min(${WX*m}u + lane, ${9*WS-1}u);
    let wf${m} = window_weight(grp, min(tile * ${WS}u + wpos${m} / 9u, shared_rows - 1u), split, cg, og, khw) + select(wpos${m} % 9u, 8u - wpos${m} % 9u, FLIP);
//@end
    let wci = select(khw, og * khw, FLIP);
    let xb = ((p.n_offset + split) * p.c + grp * cg) * hw;
    let iy0 = i32(oy0) - i32(p.ph);
    let ix0 = i32(ox0) - i32(p.pw);
//@for y in 0..RY+2
//@for t in 0..TN/RY+2
    let ok${y}_${t} = u32(iy0 + ${y}) < p.h && u32(ix0 + ${t}) < p.w;
    let xa${y}_${t} = select(0u, xb + u32(iy0 + ${y}) * p.w + u32(ix0 + ${t}), ok${y}_${t});
//@end
//@end
//@include gemm_acc
    for (var ci = 0u; ci < cg; ci++) {
        let off = ci * hw;
//@for y in 0..RY+2
//@for t in 0..TN/RY+2
        let r${y}_${t} = select(0.0, lhs[xa${y}_${t} + off], ok${y}_${t});
//@end
//@end
        let wk = ci * wci;
//@for m in 0..(9*WS+WX-1)/WX
        let wl${m} = f32(rhs[wf${m} + wk]);
//@end
//@for k in 0..9
//@for v in 0..TN/4
        let b${k}_${v} = vec4<Mul>(vec4<f32>(r${(4*v)/(TN/RY)+k/3}_${(4*v)%(TN/RY)+k%3}, r${(4*v+1)/(TN/RY)+k/3}_${(4*v+1)%(TN/RY)+k%3}, r${(4*v+2)/(TN/RY)+k/3}_${(4*v+2)%(TN/RY)+k%3}, r${(4*v+3)/(TN/RY)+k/3}_${(4*v+3)%(TN/RY)+k%3}));
//@end
//@for i in 0..TM
//@for q in 0..(TM+WS-1-i)/TM
        let a${k}_${i} = vec4<Mul>(Mul(subgroupBroadcast(wl${(9*i+k)/WX}, ${(9*i+k)%WX}u)));
//@end
//@for q in 0..(TM-WS+i)/TM
        let a${k}_${i} = vec4<Mul>(Mul(rhs[wo${i} + wk + tap${k}]));
//@end
//@for v in 0..TN/4
        part${i}_${v} = fma(a${k}_${i}, b${k}_${v}, part${i}_${v});
//@end
//@end
//@end
//@for h in 0..F16
        // f16 sums leave for f32 after every input channel's nine taps (mul_precision.wgsl).
//@include mul_flush
//@end
    }
//@include mul_flush
    let yb = (p.n_offset + split) * p.o;
//@for i in 0..TM
    if (live && keep${i}) {
        let at${i} = (yb + stored_filter(grp * og + j${i})) * ohw;
//@for v in 0..TN/4
        put_forward_w(at${i}, oy0, ox0, ${4*v}u, acc${i}_${v});
//@end
    }
//@end
}

// Where the sliding window's weight row `r` of group `grp` begins in the weights: in a forward
// convolution `stored_row`; with FLIP, the input gradient run as a forward
// convolution of dy (`ConvGeom::input_grad_as_forward`: channels and planes swapped), input
// channel r of the layer, whose weights for the layer's filter ci lie og·khw apart (`wci`),
// taps mirrored (`tap`).
fn window_weight(grp: u32, r: u32, split: u32, cg: u32, og: u32, khw: u32) -> u32 {
    if (FLIP) {
        return select(0u, split * p.c * og * khw, PER_SAMPLE) + (grp * cg * og + r) * khw;
    }
    return stored_row(grp * og + r, split) * cg * khw;
}

// Positions e .. e + 3 of an invocation's RY × TW block at (oy0, ox0), in a plane starting at
// `at` (those inside the plane).
fn put_forward_w(at: u32, oy0: u32, ox0: u32, e: u32, v: vec4<f32>) {
    for (var k = 0u; k < 4u; k++) {
        let oy = oy0 + (e + k) / ${TN/RY}u;
        let ox = ox0 + (e + k) % ${TN/RY}u;
        if (oy < p.oh && ox < p.ow) { out[at + oy * p.ow + ox] = v[k]; }
    }
}

// Positions pos0 + j .. pos0 + j + 3 of one output row starting at `at` (those inside the plane).
fn put_forward_s(at: u32, pos0: u32, j: u32, ohw: u32, v: vec4<f32>) {
    if (pos0 + j < ohw) { out[at + j] = v.x; }
    if (pos0 + j + 1u < ohw) { out[at + j + 1u] = v.y; }
    if (pos0 + j + 2u < ohw) { out[at + j + 2u] = v.z; }
    if (pos0 + j + 3u < ohw) { out[at + j + 3u] = v.w; }
}

// ---- Transposed per-sample variants (PER_SAMPLE only): rows = positions of one sample,
// cols = channels. A dynamic convolution's late layers have few positions per sample (16 at
// 4x4) and many channels; with positions as columns the register block would be mostly empty.

// Output channel `col` of group `grp` at position `row` of sample `split`.
fn put_forward_t(grp: u32, col: u32, og: u32, row: u32, ohw: u32, split: u32, v: f32) {
    if (row < ohw && col < og) { out[((p.n_offset + split) * p.o + grp * og + col) * ohw + row] = v; }
}

//@for rb_off in 0..1-RB
@compute @workgroup_size(${WX}, ${WY}, 1)
fn forward_t(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
//@end
//@for rb_on in 0..RB
@compute @workgroup_size(${WX*WY}, 1, 1)
fn forward_t(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_id) sg_id: u32, @builtin(subgroup_size) sg_size: u32,
        @builtin(subgroup_invocation_id) lane: u32) {
//@include subgroup_place
//@end
    // lhs = x [n, c, h, w], rhs = weights [n_count, o, c/g, kh, kw], out = y [n, o, oh, ow]
    let cg = p.c / p.groups;
    let og = p.o / p.groups;
    let ohw = p.oh * p.ow;
    let t = tile_of(wg, nwg, lid, ohw, og, p.n_count);
//@for rb_off in 0..1-RB
    if (!t.valid) { return; }
//@end
//@for rb_on in 0..RB
    if (t.split >= p.n_count || t.row0 >= ohw) { return; }
//@end
    let hw = p.h * p.w;
    let khw = p.kh * p.kw;
    let xb = ((p.n_offset + t.split) * p.c + t.grp * cg) * hw;
    // The positions whose inputs this invocation loads: its TM rows, or with RB (as `forward`'s
    // weights) rows l, l + WX, … of its row of lanes, broadcast to the row.
//@for i in 0..(TM+WX-1)/WX*RB+TM*(1-RB)
    let s${i} = min(t.row0 + min(${WX*i*RB+i*(1-RB)}u + lid.x * ${RB}u, ${TM-1}u), ohw - 1u);
    let iy${i} = i32((s${i} / p.ow) * p.sh) - i32(p.ph);
    let ix${i} = i32((s${i} % p.ow) * p.sw) - i32(p.pw);
//@end
//@for j in 0..TN
    let wo${j} = weight_row(t.grp * og + min(t.col0 + ${WX*j}u, og - 1u), t.split) * cg * khw;
//@end
//@include gemm_acc
    for (var ky = 0u; ky < p.kh; ky++) {
        let dy = i32(ky * p.dh);
        for (var kx = 0u; kx < p.kw; kx++) {
            let dx = i32(kx * p.dw);
//@for i in 0..(TM+WX-1)/WX*RB+TM*(1-RB)
            let ok${i} = u32(iy${i} + dy) < p.h && u32(ix${i} + dx) < p.w;
            let xa${i} = select(0u, xb + u32(iy${i} + dy) * p.w + u32(ix${i} + dx), ok${i});
//@end
            let tap = ky * p.kw + kx;
            for (var ci = 0u; ci < cg; ci++) {
                let off = ci * hw;
                let wk = ci * khw + tap;
//@for v in 0..TN/4
                let b${v} = vec4<Mul>(vec4<BElem>(rhs[wo${4*v} + wk], rhs[wo${4*v+1} + wk], rhs[wo${4*v+2} + wk], rhs[wo${4*v+3} + wk]));
//@end
//@for i in 0..(TM+WX-1)/WX*RB+TM*(1-RB)
                let r${i} = select(0.0, lhs[xa${i} + off], ok${i});
//@end
//@for i in 0..TM
//@for rb_off in 0..1-RB
                let a${i} = vec4<Mul>(Mul(r${i}));
//@end
//@for rb_on in 0..RB
                let a${i} = vec4<Mul>(Mul(subgroupBroadcast(r${i/WX}, ${i%WX}u)));
//@end
//@for v in 0..TN/4
                part${i}_${v} = fma(a${i}, b${v}, part${i}_${v});
//@end
//@end
//@include conv_mul_chunk
            }
        }
    }
//@include mul_flush
//@for i in 0..TM
//@for v in 0..TN/4
    put_forward_t(t.grp, t.col0 + ${WX*4*v}u, og, t.row0 + ${i}u, ohw, t.split, acc${i}_${v}.x);
    put_forward_t(t.grp, t.col0 + ${WX*(4*v+1)}u, og, t.row0 + ${i}u, ohw, t.split, acc${i}_${v}.y);
    put_forward_t(t.grp, t.col0 + ${WX*(4*v+2)}u, og, t.row0 + ${i}u, ohw, t.split, acc${i}_${v}.z);
    put_forward_t(t.grp, t.col0 + ${WX*(4*v+3)}u, og, t.row0 + ${i}u, ohw, t.split, acc${i}_${v}.w);
//@end
//@end
}
