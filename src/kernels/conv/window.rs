//! The sliding window (docs/architecture.md, "The sliding window"): on CPU adapters, 3×3
//! stride-1 forward convolutions (and such layers' input gradients, as forwards) run as
//! `forward_w` (conv_forward.wgsl), each input loaded once for the nine taps.

use super::{ConvGeom, Samples, SLOT_O_STATIC, SLOT_SHARED_ROWS, SLOT_TILE_ROWS};
use crate::gpu::blocking::LOAD_COST;
use crate::kernels::{u, Arg, Blocking, KernelCall, PlanCtx};

/// The sliding-window call (`forward_w`) over `g` where `sliding_window` takes it: a forward
/// convolution (`args` x, weights, y, and a row map's, whose first `statics` weight rows are
/// W_S's), or with `flip` the input gradient of a 3×3 stride-1 layer run as the forward
/// convolution `input_grad_as_forward` (args dy, the layer's weights, dx). Tiles of WX
/// samples x TM·WY filters x (RY rows x TW columns).
pub(super) fn window_call(
    g: &ConvGeom,
    ctx: &PlanCtx,
    samples: Samples,
    shader: &'static str,
    args: &[Arg],
    statics: usize,
    flip: bool,
) -> Option<KernelCall> {
    let (_, cols, n_offset, n_count) = samples.layout(g, g.oh * g.ow);
    let (ry, tw) = sliding_window(g, ctx, samples.per_sample(), n_count)?;
    let og = g.o / g.groups;
    let mut b = Blocking {
        tn: ry * tw,
        ..ctx.blocking.fit(og, cols)
    }
    .fine_rows(og);
    let mut row_tiles = og.div_ceil(b.tm * b.wy);
    let chunks = g.oh.div_ceil(ry) * g.ow.div_ceil(tw);
    // The weight rows every sample reads: all of shared weights, a row map's W_S rows. On an
    // adapter whose subgroups are exactly WX lanes, a workgroup of one subgroup loads each
    // of their weights once and broadcasts it (conv_forward.wgsl); each tile then takes WS of
    // them and TM − WS per-sample rows, so that a row map's tiles all load their inputs once
    // for both kinds (as two launches, one per kind, they cost more than the broadcast saved).
    let mut shared_rows = if samples.per_sample() { statics } else { og };
    // Per-sample weights with no row shared (DY-Conv, PAD; not a row map): lanes may instead
    // take chunks of one sample's plane, whose rows are then all read alike across the
    // subgroup and broadcast, where the plane's chunks fill the lanes (`chunks_fill_lanes`).
    let chunk_lanes = samples.per_sample()
        && shared_rows == 0
        && broadcasts(ctx)
        && chunks_fill_lanes(chunks, b.wx);
    if chunk_lanes {
        shared_rows = og;
    }
    let broadcast = shared_rows > 0 && broadcasts(ctx);
    let mut ws = 0;
    if broadcast {
        b.wy = 1;
        (b.tm, ws, row_tiles) = broadcast_tiles(og, shared_rows, b.tm);
    }
    let mut params = g.params(chunks, 1, n_offset, n_count);
    params[SLOT_O_STATIC] = u(statics);
    params[SLOT_SHARED_ROWS] = u(if broadcast { shared_rows } else { 0 });
    // The rows the tiles cover: all of them with broadcast rows, else the layer's.
    params[SLOT_TILE_ROWS] = u(if broadcast { row_tiles * b.tm } else { og });
    let tiles = match chunk_lanes {
        true => n_count * g.groups * row_tiles * chunks.div_ceil(b.wx),
        false => n_count.div_ceil(b.wx) * g.groups * row_tiles * chunks,
    };
    let call = KernelCall::new(shader, "forward_w")
        .blocking(b)
        .constant("PER_SAMPLE", samples.per_sample() as u8 as f64)
        .args(args)
        .params(&params)
        .groups(tiles as u32)
        .window_rows(ry)
        .broadcast_rows(ws);
    let call = if chunk_lanes {
        call.chunk_lanes()
    } else {
        call
    };
    Some(if flip {
        call.constant("FLIP", 1.0)
    } else {
        call
    })
}

/// A window tiling whose first `shared` of `og` rows are broadcast (WY = 1), from blocks of
/// `tm` rows: (TM, WS, row tiles), each tile WS of the shared rows and TM − WS of the others.
fn broadcast_tiles(og: usize, shared: usize, tm: usize) -> (usize, usize, usize) {
    let row_tiles = og.div_ceil(tm);
    let ws = shared.div_ceil(row_tiles);
    (ws + (og - shared).div_ceil(row_tiles), ws, row_tiles)
}

/// Whether `chunks` window blocks of a sample, as lanes, fill at least 85 % of the blocks of
/// `wx` lanes that cover them (28×28: 28 of 32, 14×14: 7 of 8, 32×32: 32 of 32; 7×7: 2 of 8).
/// Per layer, ResNet-10 ×0.25 DY-Conv inference (batch 500, one lavapipe thread, ms): 28×28
/// 207 → 155, 14×14 202 → 142 (the static layers: 133 and 128). Not for a row map: with 6 of
/// 16 filters dynamic its sample lanes, W_S's rows broadcast, ran at the static layer's time,
/// 127 ms, and chunk lanes at 156; with 22 of 32, 139 against 142.
fn chunks_fill_lanes(chunks: usize, wx: usize) -> bool {
    chunks * 100 >= chunks.div_ceil(wx) * wx * 85
}

/// Whether a forward convolution (or a 3×3 stride-1 layer's input gradient, as one) runs as a
/// sliding window (`forward_w`, conv_forward.wgsl), and its block's (rows, columns): on CPU
/// adapters, 3×3 kernels at stride 1 and dilation 1, with a lane for each of at least WX
/// samples. Measured on lavapipe (ResNet-18 ×0.25, batch
/// 500, one thread, `PADNET_PROFILE`, per layer against `forward`): batched 28×28 −9 %, 14×14
/// −6 %, 7×7 −7 %, 4×4 +6 % (so not there, unless its weights are broadcast: then 512→512 4×4
/// b32 forward 217 / 219 → 184 / 190 ms, input gradient 220 → 189, 128→128 4×4 b500 216 / 218
/// → 185 / 185, one thread, two interleaved rounds); per sample, where `forward` fills its blocks
/// worse, 28×28 −15 % (and −25 % for a split layer's row map), 7×7 −21 % and 4×4 −5 %
/// against `forward_t`. At width 1, though, ResNet-18's 512-filter 4×4 layers run faster
/// transposed (`forward_t`, `grad_input_t`): a DY-Conv step at 32×32, batch 64, 2 threads,
/// 2 interleaved rounds, 16.35 / 16.99 s with their windows, 15.93 / 15.75 s without.
fn sliding_window(
    g: &ConvGeom,
    ctx: &PlanCtx,
    per_sample: bool,
    samples: usize,
) -> Option<(usize, usize)> {
    let batched_fits = per_sample || broadcasts(ctx) || g.ow >= 7;
    let fits = ctx.is_cpu && batched_fits && window_pays(g, per_sample, samples, ctx.blocking.wx);
    fits.then(|| window_shape(g.oh, g.ow, ctx.blocking.tn))
}

/// Whether sliding windows may broadcast the weights their samples share, and the register
/// kernels the weights a row of lanes shares (`PlanCtx::weight_broadcast`): on an adapter whose
/// subgroups are exactly the blocking's WX lanes, so that a workgroup row is one subgroup
/// (`Blocking::fit` keeps WX).
pub(super) fn broadcasts(ctx: &PlanCtx) -> bool {
    ctx.weight_broadcast && ctx.subgroup_lanes == Some([ctx.blocking.wx as u32; 2])
}

/// Whether the sliding window fits the layer: 3×3 at stride 1 and dilation 1.
pub(super) fn windowed(g: &ConvGeom) -> bool {
    (g.kh, g.kw, g.stride, g.dil) == (3, 3, (1, 1), (1, 1))
}

/// `sliding_window`'s rule on a CPU adapter with `wx` lanes: a windowed layer over at least
/// `wx` samples, and per sample not where few positions and over 128 filters make the
/// transposed kernels faster (`sliding_window` adds that batched layers under 7 columns need
/// their weights broadcast).
fn window_pays(g: &ConvGeom, per_sample: bool, samples: usize, wx: usize) -> bool {
    let transposed_wins = per_sample && g.oh * g.ow < 64 && g.o / g.groups > 128;
    windowed(g) && samples >= wx && !transposed_wins
}

/// Whether a per-sample convolution over all of `g`'s batch runs as a sliding window on CPU
/// adapters (`sliding_window` with the CPU blocking's WX lanes), for cost models that plan
/// before an adapter is known (`SplitForm::choose`).
pub fn windowed_on_cpu(g: &ConvGeom) -> bool {
    window_pays(g, true, g.n, Blocking::CPU.wx)
}

/// The sliding window's block for an oh × ow output: RY rows of TW columns, RY·TW a multiple
/// of 4 (vec4 accumulators) and at most `tn`, chosen by the cost model of `Blocking` (a load
/// `LOAD_COST` FMAs) for 16 filters: per input channel (RY + 2)(TW + 2) input and 9·16 weight
/// loads, 9·16·RY·TW FMAs, times the blocks that cover the plane. 28×28 → 4 × 7, 14×14 →
/// 2 × 14, 7×7 → 4 × 7, 4×4 → 4 × 4.
pub(super) fn window_shape(oh: usize, ow: usize, tn: usize) -> (usize, usize) {
    let cost = |(ry, tw): (usize, usize)| {
        let loads = (ry + 2) * (tw + 2) + 9 * 16;
        oh.div_ceil(ry) * ow.div_ceil(tw) * (loads * LOAD_COST + 9 * 16 * ry * tw)
    };
    (1..=8)
        .flat_map(|ry| (1..=ow).map(move |tw| (ry, tw)))
        .filter(|&(ry, tw)| (ry * tw).is_multiple_of(4) && ry * tw <= tn)
        .min_by_key(|&shape| cost(shape))
        .expect("RY = 4, TW = 1 always fits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_blocks_cover_resnet_planes_without_waste() {
        let shapes: Vec<_> = [28, 14, 7, 4]
            .map(|side| window_shape(side, side, 32))
            .to_vec();
        assert_eq!(shapes, [(4, 7), (2, 14), (4, 7), (4, 4)]);
        // GPU blocks (TN = 4) still get a window of 4 positions.
        assert_eq!(window_shape(9, 7, 4).0 * window_shape(9, 7, 4).1, 4);
    }
}
