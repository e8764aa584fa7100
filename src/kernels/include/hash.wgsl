// PCG hash of a u32 (kernels::elementwise::pcg_hash on the CPU): dropout masks, router noise.
fn pcg_hash(v: u32) -> u32 {
    let s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}
