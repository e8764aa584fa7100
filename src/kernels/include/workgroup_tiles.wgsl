// The workgroup-tiled kernels' staged operands (matmul_tiled.wgsl, conv_tiled.wgsl): a
// TILE_M x KB tile of the rows' operand and a KB x TILE_N tile of the columns', both k-major,
// in the multiplication precision (mul_precision.wgsl). (TILE_M + TILE_N) * KB * 4 bytes of
// workgroup memory: 8 KiB with the GPU blocking (4x4 in 16x16), 16 KiB with the large one.
const KB: u32 = 16u;
const TILE_M: u32 = ${TM*WY}u;
const TILE_N: u32 = ${TN*WX}u;
// Sized TILE * KB (the template cannot read KB).
var<workgroup> a_tile: array<Mul, ${TM*WY*16}>;
var<workgroup> b_tile: array<Mul, ${TN*WX*16}>;
