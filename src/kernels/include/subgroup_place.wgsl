    // The invocation's place by its subgroup, as in matmul_subgroup.wgsl: flat = subgroup_id ·
    // subgroup_size + lane, lid = (flat % WX, flat / WX), so that a row of WX invocations lies in
    // one subgroup; group_lane0 is the lane of the row's first invocation.
    let flat = sg_id * sg_size + lane;
    let lid = vec3<u32>(flat % ${WX}u, flat / ${WX}u, 0u);
    let group_lane0 = lane - lid.x;
