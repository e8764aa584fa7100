// The workgroup-tiled kernels' staged operands (matmul_tiled.wgsl, conv_tiled.wgsl): a
// TILE_M x KB tile of the rows' operand and a KB x TILE_N tile of the columns', both k-major,
// in the multiplication precision (mul_precision.wgsl). (TILE_M + TILE_N) * KB * 4 bytes of
// workgroup memory: 8 KiB with the GPU blocking (4x4 in 16x16), 16 KiB with the large one.
//
// Both are read as vec4s (workgroup_tile_mul.wgsl), a quarter of the loads scalar reads take:
// an invocation's TM rows lie together in the row tile already; its columns (lid.x + WX·j,
// WX apart, the order the epilogues store) are placed four by four in the column tile
// (`stage_b`), so that each vec4 holds columns j = 4v .. 4v + 3 and neighbouring invocations
// read neighbouring vec4s. TM and TN are multiples of 4.
const KB: u32 = 16u;
const TILE_M: u32 = ${TM*WY}u;
const TILE_N: u32 = ${TN*WX}u;
// Sized TILE * KB / 4 (the template cannot read KB).
var<workgroup> a_tile: array<vec4<Mul>, ${TM*WY*4}>;
var<workgroup> b_tile: array<vec4<Mul>, ${TN*WX*4}>;

// Row r of the row tile at step kk.
fn stage_a(kk: u32, r: u32, v: Mul) {
    let i = kk * TILE_M + r;
    a_tile[i / 4u][i % 4u] = v;
}

// Column c of the column tile at step kk: column j = c / WX of invocation c % WX, at vec4
// (j / 4) * WX + c % WX of the step, component j % 4.
fn stage_b(kk: u32, c: u32, v: Mul) {
    let j = c / ${WX}u;
    b_tile[kk * ${TN*WX/4}u + (j / 4u) * ${WX}u + c % ${WX}u][j % 4u] = v;
}
