// The per-sample forward convolution of a split PAD-Conv layer (`Op::SplitDynConv2d`,
// docs/method.md §5): the layer's dynamic filters are whole filters, so only they are assembled
// per sample, and every other filter reads the shared static weight W_S. The weight binding
// holds W_S's o_static filters, then each sample's assembled dynamic filters:
//
//   rhs = [W_S (o_static filters) | sample 0's o − o_static filters | sample 1's | …]
//
// and `row_of` (f32 integers, the first half of the binding `order`) says where filter o is:
// row_of[o] < o_static is W_S's filter, any other value j the sample's filter j − o_static.
// The entries are conv.wgsl's (conv_forward.wgsl), launched with PER_SAMPLE.

//@include conv_common

// [row_of (O) | filter_of (O)]: filter_of[j] is the filter whose weights are row j.
@group(0) @binding(4) var<storage, read> order: array<f32>;

// Filter `o`'s weights (in filters) for sample `split` of the range.
fn weight_row(o: u32, split: u32) -> u32 {
    return stored_row(u32(order[o]), split);
}

// Weight row j (in [W_S | dynamic filters] order) for sample `split`.
fn stored_row(j: u32, split: u32) -> u32 {
    return select(j + split * (p.o - p.o_static), j, j < p.o_static);
}

// The filter of weight row j: `forward_w` computes weight rows, W_S's with their weights
// broadcast across the samples of its lanes (`conv::window_call`), and stores each to its filter.
fn stored_filter(j: u32) -> u32 {
    return u32(order[p.o + j]);
}

//@include conv_forward
