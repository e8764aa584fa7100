//! Every WGSL file parses and validates with naga, under the portable limits we request.

/// The broadcast rows (template WS) of the forward sliding window with blocking `b`.
fn broadcast_rows(shader: &str, b: padnet_wgpu::kernels::Blocking) -> u32 {
    match (shader, b.wy) {
        ("conv", 1) => b.tm as u32,
        ("conv_rows", 1) => b.tm as u32 / 2,
        _ => 0,
    }
}

#[test]
fn every_shader_validates_with_naga() {
    let mut failures = vec![];
    use padnet_wgpu::kernels::Blocking;
    // The forward sliding window with weights broadcast (WS > 0, one subgroup row: WY = 1).
    const FORWARD_WINDOW_WS: Blocking = Blocking {
        wy: 1,
        ..Blocking::CPU
    };
    let variants: Vec<(String, String)> = padnet_wgpu::gpu::shaders::ALL
        .iter()
        .flat_map(|(name, src)| {
            // The tiled GEMM always runs with the GPU blocking (its plan forces it), the
            // subgroup GEMM with the blocking of the adapter's smallest subgroup.
            let blockings = match *name {
                "matmul_tiled" => vec![Blocking::GPU],
                "matmul_subgroup" => [
                    (Blocking::GPU, [4, 128]),
                    (Blocking::GPU, [32, 32]),
                    (Blocking::CPU, [8, 8]),
                ]
                .into_iter()
                .flat_map(|(base, lanes)| {
                    [(1, 1), (64, 1024), (1024, 8)]
                        .map(|(rows, cols)| base.subgroup(lanes, rows, cols))
                })
                .collect(),
                // The weight gradients' sliding windows: 32 (conv) or 8 (dynconv_wgrad)
                // filters × 1 channel per invocation; dynconv_wgrad's depthwise entry, 3×3 taps.
                "conv" | "dynconv_wgrad" => {
                    let tm = if *name == "conv" { 32 } else { 8 };
                    let window = Blocking {
                        tm,
                        tn: 1,
                        wx: 8,
                        wy: 1,
                    };
                    let mut blockings = vec![Blocking::CPU, Blocking::GPU, window, FORWARD_WINDOW_WS];
                    if *name == "dynconv_wgrad" {
                        blockings.push(Blocking {
                            tm: 1,
                            tn: 9,
                            wx: 1,
                            wy: 1,
                        });
                    }
                    blockings
                }
                "conv_rows" => vec![Blocking::CPU, Blocking::GPU, FORWARD_WINDOW_WS],
                // The tiled convolutions run GPU blocks, narrowed for a per-sample 4×4 plane.
                "conv_tiled" => vec![
                    Blocking::GPU,
                    Blocking {
                        wx: 4,
                        wy: 32,
                        ..Blocking::GPU
                    },
                ],
                _ => vec![Blocking::CPU, Blocking::GPU],
            };
            // The convolution weight gradients may share dy by subgroup shuffles, and the kernel
            // assembly alpha by broadcasts (SG = 1);
            // the GEMM kernels and the convolution forward may multiply in f16 (F16 = 1), and
            // then also read their weights as f16 (F16_B = 1): f16 variant 0, 1 or 2; the
            // kernel assembly may store its kernels as f16 (F16_OUT = 1): variant 0 or 1.
            // The windows (one channel per invocation) only exist with shuffles, and
            // dynconv_wgrad's (`main_w`, W = 1) in place of its `main` (W = 0).
            let sg_variants = move |b: Blocking| match (*name, b.tn) {
                (_, 1) => 1..2,
                // Shuffles take row blocks of whole vec4s (`Blocking::fits_subgroups`).
                ("dynconv_wgrad", _) if !b.tm.is_multiple_of(4) => 0..1,
                ("conv" | "conv_rows" | "dynconv" | "dynconv_wgrad", _) => 0..2,
                _ => 0..1,
            };
            let f16_variants = if name.starts_with("matmul") || name.starts_with("conv") {
                3
            } else if *name == "dynconv" {
                2
            } else {
                1
            };
            // The subgroup GEMM reads B and writes C as vec4s with VEC4 = 1, as PAD's `prepare`
            // and `combine` their kernels; the convolution
            // forward's sliding window covers RY = 1 or more output rows (4 at 28×28).
            let vec4_variants = if ["matmul_subgroup", "dynconv"].contains(name) { 2 } else { 1 };
            // The register convolutions may broadcast their weights along a row (RB = 1).
            let wb_variants = move |sg: u32| match (*name, sg) {
                ("conv" | "conv_rows", 0) => 0..2,
                _ => 0..1,
            };
            let window_rows: &[u32] = if name.starts_with("conv") { &[1, 4] } else { &[1] };
            let variants = blockings.into_iter().flat_map(move |b| {
                sg_variants(b).flat_map(move |sg| {
                    (0..f16_variants).flat_map(move |f16| {
                        (0..vec4_variants).flat_map(move |v4| {
                            // RY rows need TN = RY·TW columns.
                            let rows_fit = move |ry: &&u32| (b.tn as u32).is_multiple_of(**ry);
                            window_rows.iter().filter(rows_fit).flat_map(move |&ry| {
                                wb_variants(sg).flat_map(move |wb| {
                                    [(0, 0), (1, 0), (0, 1)]
                                        .map(|(rows, k)| (b, rows, k, sg, f16, v4, ry, wb))
                                })
                            })
                        })
                    })
                })
            });
            variants.map(move |(b, rows, k, sg, f16, v4, ry, wb)| {
                // Kernel counts of the dynamic-convolution templates (K = 4, plus PAD's row),
                // and the grouped-GEMM variants.
                let mut params = b.template().to_vec();
                params.retain(|(n, _)| !["SG", "RB", "F16", "F16_B", "RY", "WS"].contains(n));
                params.extend([
                    ("SG", sg),
                    ("RB", wb),
                    ("F16", (f16 > 0) as u32),
                    ("F16_B", (f16 == 2) as u32),
                    ("F16_OUT", (f16 > 0) as u32),
                    ("KK", 4),
                    ("KE", 5),
                    ("SPB", 8),
                    ("SGL", 8),
                    ("JPI", 4),
                    ("GROUP_ROWS", rows),
                    ("GROUP_K", k),
                    ("VEC4", v4),
                    ("RY", ry),
                    ("W", (b.tn == 1) as u32),
                    // The sliding window's weights by broadcast need subgroups too, and a
                    // workgroup of one row (WY = 1): every row of a tile (shared weights) or,
                    // with a row map, half of them.
                    ("WS", broadcast_rows(name, b) * sg),
                ]);
                let expanded = padnet_wgpu::gpu::template::expand(src, &params).expect("template");
                (
                    format!(
                        "{name} {b:?} group rows {rows} k {k} SG {sg} RB {wb} VEC4 {v4} RY {ry} F16 variant {f16}"
                    ),
                    expanded,
                )
            })
        })
        .collect();
    for (name, src) in &variants {
        let src = src.as_str();
        let module = match naga::front::wgsl::parse_str(src) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: {}", e.emit_to_string(src)));
                continue;
            }
        };
        // Only the subgroup GEMM and SG / RB variants may use subgroup operations (they are built
        // only where the device has them); every other shader must run without.
        // Likewise f16 arithmetic (F16 variants and the f16 copy of the parameters, built only
        // where the device has it).
        let mut caps = if name.starts_with("matmul_subgroup ")
            || name.contains(" SG 1")
            || name.contains(" RB 1")
        {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::empty()
        };
        if !name.ends_with(" F16 variant 0") || name.starts_with("to_f16 ") {
            caps |= naga::valid::Capabilities::SHADER_FLOAT16;
        }
        let mut v = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        if let Err(e) = v.validate(&module) {
            failures.push(format!("{name}: {}", e.emit_to_string(src)));
        }
        // Portable workgroup limits: ≤ 256 invocations and ≤ 16 KiB of workgroup memory.
        for ep in &module.entry_points {
            let inv: u32 = ep.workgroup_size.iter().product();
            assert!(inv <= 256, "{name}:{} uses {inv} invocations", ep.name);
        }
        let wg_bytes: u32 = module
            .global_variables
            .iter()
            .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
            .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
            .sum();
        assert!(
            wg_bytes <= 16 * 1024,
            "{name}: {wg_bytes} bytes of workgroup memory"
        );
    }
    assert!(
        failures.is_empty(),
        "invalid shaders:\n{}",
        failures.join("\n")
    );
    assert!(padnet_wgpu::gpu::shaders::ALL.len() >= 8);
}
