//@include grid
// One invocation's flat index, for 1-D workgroups of WG_SIZE invocations (a const the
// including shader declares).
fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return group_index(wg, nwg) * WG_SIZE + lid.x;
}
