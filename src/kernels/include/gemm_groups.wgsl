//@for g in 0..GROUP_ROWS+GROUP_K
// Grouped GEMM (MoE experts; template GROUP_ROWS or GROUP_K = 1): batch e covers rows
// groups[e]..groups[e+1] of A and C (GROUP_ROWS; p.m is then the number of rows of A and C,
// and one extra batch zeroes the rows after the last group), or that k range of A and B
// (GROUP_K).
@group(0) @binding(4) var<storage, read> groups: array<u32>;
//@end
