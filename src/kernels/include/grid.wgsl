// A dispatch too large for one grid row is spread over a 2-D grid of workgroups (one dimension
// holds at most 65 535): the workgroup's flat position in it.
fn group_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}
