//@include mul_precision
// The uniform block, bindings, tiling and column helpers of the convolution shaders
// (conv.wgsl, conv_rows.wgsl).

struct Params {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, kh: u32, kw: u32, groups: u32,
    oh: u32, ow: u32, sh: u32, sw: u32,
    ph: u32, pw: u32, dh: u32, dw: u32,
    tiles_n: u32, n_per_split: u32, n_offset: u32, n_count: u32,
    // conv_rows.wgsl: filters of the shared weight ahead of the per-sample rows; `forward_w`:
    // the weight rows every sample reads and the rows its tiles span (`conv::window_call`).
    o_static: u32, shared_rows: u32, tile_rows: u32,
    // `forward` and `grad_input`: the parts their reduction is split into (split-K on GPUs,
    // `conv::split_k`; 0 or 1: none).
    k_splits: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> lhs: array<f32>;
@group(0) @binding(2) var<storage, read> rhs: array<BElem>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// grad_weight's names for lhs and rhs (conv_wgrad_sample.wgsl, shared with dynconv_wgrad).
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;

// Strides as compile-time constants so grad_input's divisibility tests become shifts/masks.
override SH: u32 = 1u;
override SW: u32 = 1u;
// Per-sample weights (dynamic convolution): forward and grad_input then process samples
// n_offset .. n_offset + n_count, weight [n_count, o, c/g, kh, kw], and tile each sample
// separately (the tile's `split` is the sample within the range) so a tile shares one weight.
override PER_SAMPLE: bool = false;
// `forward_w` computes an input gradient: the weights are the layer's, read transposed and
// mirrored (conv_forward.wgsl, `window_weight`).
override FLIP: bool = false;

struct Tile { grp: u32, row0: u32, col0: u32, split: u32, valid: bool }

//@include grid

fn tile_of(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>, rows: u32, cols: u32, splits: u32) -> Tile {
    let tile = group_index(wg, nwg);
    let per_group = ((rows + ${TM*WY-1}u) / ${TM*WY}u) * p.tiles_n;
    var t: Tile;
    let gs = tile / per_group;
    t.grp = gs % p.groups;
    t.split = gs / p.groups;
    let r = tile % per_group;
    t.row0 = (r / p.tiles_n) * ${TM*WY}u + lid.y * ${TM}u;
    t.col0 = (r % p.tiles_n) * ${TN*WX}u + lid.x;
    // Invocations whose rows all lie past the end (small groups, e.g. depthwise) skip the work.
    t.valid = t.split < splits && t.row0 < rows && t.col0 < cols;
    return t;
}

// A tile's part of a reduction over `len` channels split `k_splits` ways: `tile_of`'s split
// counts (sample, part), the part channels lo .. hi.
struct Part { sample: u32, part: u32, lo: u32, hi: u32 }

fn reduction_part(split: u32, len: u32) -> Part {
    let ks = max(p.k_splits, 1u);
    let per = (len + ks - 1u) / ks;
    var r: Part;
    r.sample = split / ks;
    r.part = split % ks;
    r.lo = r.part * per;
    r.hi = min(len, r.lo + per);
    return r;
}

// The sample of the output that sample `s` (of the batch) of part `part` writes: the output's
// own, or with split-K that of the partial sums [k_splits, n_count, ...] the plan adds up.
fn out_sample(s: u32, part: u32) -> u32 {
    return select(s, part * p.n_count + s - p.n_offset, p.k_splits > 1u);
}

// The input gradient of a strided layer (dilation 1) by phases (`conv::grad_input_call`):
// input positions fall into SH·SW phases by (iy mod SH, ix mod SW), and each phase takes only
// the taps that reach it (`phase_taps`: every SH-th kernel row from `first_tap`, every SW-th
// column) instead of every tap with most masked (three in four at stride 2). A tile covers
// one phase; its columns index the phase's grid of ⌈h/SH⌉ × ⌈w/SW⌉ positions (`grid_plane`),
// those past the plane's edge on odd sizes computed clamped and not stored.
override PHASED: bool = false;

fn phases() -> u32 { return select(1u, SH * SW, PHASED); }

// Positions of one sample in the columns of an input gradient: its plane, or a phase's grid.
fn grid_plane() -> u32 {
    if (!PHASED) { return p.h * p.w; }
    return ((p.h + SH - 1u) / SH) * ((p.w + SW - 1u) / SW);
}

// Index `q` of phase `phase`'s grid -> (input position, clamped to the plane; 1 if inside).
fn phase_pos(q: u32, phase: u32) -> vec2<u32> {
    if (!PHASED) { return vec2<u32>(q, 1u); }
    let gw = (p.w + SW - 1u) / SW;
    let iy = phase / SW + SH * (q / gw);
    let ix = phase % SW + SW * (q % gw);
    return vec2<u32>(min(iy, p.h - 1u) * p.w + min(ix, p.w - 1u), u32(iy < p.h && ix < p.w));
}

// The first kernel tap (of a dimension with stride `s` and padding `pad`) that reaches phase
// coordinate `r`: taps k with r + pad − k divisible by s. 0 (every tap) unless PHASED.
fn first_tap(r: u32, pad: u32, s: u32) -> u32 { return select(0u, (r + pad) % s, PHASED); }

// The taps an input gradient walks per output channel (`grad_input`, `grad_input_t`,
// `grad_input_tiled`, `grad_input_dw`):
// every tap, or with PHASED those of phase `phase` (`first_tap`, then every SH-th row and
// SW-th column of the kernel): `n` of them (0 where none reaches the phase), `nx` per kernel
// row (at least 1), from (y0, x0) in steps of (sy, sx).
struct Taps { y0: u32, x0: u32, sy: u32, sx: u32, nx: u32, n: u32 }

fn phase_taps(phase: u32) -> Taps {
    var t: Taps;
    t.y0 = first_tap(phase / SW, p.ph, SH);
    t.x0 = first_tap(phase % SW, p.pw, SW);
    t.sy = select(1u, SH, PHASED);
    t.sx = select(1u, SW, PHASED);
    let nx = (p.kw - min(t.x0, p.kw) + t.sx - 1u) / t.sx;
    t.nx = max(nx, 1u);
    t.n = ((p.kh - min(t.y0, p.kh) + t.sy - 1u) / t.sy) * nx;
    return t;
}

// Tap `i` of `taps` as an index into a filter's kh·kw weights.
fn tap_at(taps: Taps, i: u32) -> u32 {
    return (taps.y0 + taps.sy * (i / taps.nx)) * p.kw + taps.x0 + taps.sx * (i % taps.nx);
}

// Column `col` of a tile -> (sample, position in the sample's plane of `plane` elements).
fn col_pos(col: u32, plane: u32, split: u32) -> vec2<u32> {
    if (PER_SAMPLE) { return vec2<u32>(p.n_offset + split, col); }
    return vec2<u32>(col / plane, col % plane);
}

// Where `forward` and `grad_input` (and their tiled forms) store an invocation's block: rows
// row0 .. of a group of `rows` channels (of `channels` in all) at group `grp`, columns
// col0 + WX·j of `cols`, over planes of `plane` positions (a phase's grid with PHASED);
// sample and part as `reduction_part`.
struct OutBlock {
    grp: u32, rows: u32, row0: u32, col0: u32, cols: u32,
    channels: u32, plane: u32, sample: u32, part: u32, phase: u32,
}

// Output (channel `row` of the block's group, column `col`) = v, for columns before the end
// (and with PHASED, inside the plane).
fn put_out(b: OutBlock, row: u32, col: u32, v: f32) {
    if (col < b.cols) {
        let q = col_pos(col, b.plane, b.sample);
        let at = phase_pos(q.y, b.phase);
        let plane = select(b.plane, p.h * p.w, PHASED);
        if (at.y == 1u) {
            out[(out_sample(q.x, b.part) * b.channels + b.grp * b.rows + row) * plane + at.x] = v;
        }
    }
}
