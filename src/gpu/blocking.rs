//! The register blocking of the GEMM-like kernels (matmul, convolutions, the fused DY-Conv
//! weight gradient): chosen per adapter by the runtime, adapted per launch by the kernel plans,
//! and substituted into the WGSL template (`TM`, `TN`, `WX`, `WY`).

/// Register blocking of the GEMM-like kernels: each invocation computes `tm x tn` outputs, a
/// workgroup of `wx x wy` invocations a `(tm*wy) x (tn*wx)` tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    pub tm: usize,
    pub tn: usize,
    pub wx: usize,
    pub wy: usize,
}

impl Blocking {
    /// The default blocking of an adapter type: CPU adapters (lavapipe) get fat blocks.
    pub fn for_device(device_type: wgpu::DeviceType) -> Blocking {
        if device_type == wgpu::DeviceType::Cpu {
            Blocking::CPU
        } else {
            Blocking::GPU
        }
    }

    /// CPU adapters (lavapipe): loads cost far more than FMAs, so amortise each load over many
    /// FMAs. 16x32 measured fastest (~30 GFLOP/s at 1024^3 vs ~15 for 8x8 on 2 cores).
    pub const CPU: Blocking = Blocking {
        tm: 16,
        tn: 32,
        wx: 8,
        wy: 4,
    };
    /// CPU adapters, GEMMs with a transposed B (linear layers: x·Wᵀ): each lane loads its
    /// columns of B at a stride of K, so taller blocks amortise those loads over more rows.
    /// Measured on MiniLM's FFN output projection (k = 1536): 32x16 blocks 104 ms, 16x16
    /// blocks 126 ms per grouped expert GEMM.
    pub const CPU_TRANS_B: Blocking = Blocking {
        tm: 32,
        tn: 16,
        wx: 8,
        wy: 2,
    };
    /// CPU adapters, the subgroup GEMM: A's loads are shared by shuffles, so taller blocks
    /// amortise B's loads over more rows. Measured on lavapipe, GEMM 1024³ (2 rounds, 2
    /// threads): 32x16 in 8x4 30.0 and 20.4 GFLOP/s, 64x8 24.9 and 26.7, 16x32 (the register
    /// kernel's) 13.1 and 14.4, 32x32 14.2 (spills); the register kernel 19.0 and 10.8.
    pub const CPU_SUBGROUP: Blocking = Blocking {
        tm: 32,
        tn: 16,
        wx: 8,
        wy: 4,
    };
    /// GPUs: small blocks, many invocations. On an H100 (Vulkan) 4x4 blocks in 16x16
    /// workgroups measured best overall: GEMM 1024³ 8.9 TFLOP/s vs 7.4 for 8x8 in 8x8.
    pub const GPU: Blocking = Blocking {
        tm: 4,
        tn: 4,
        wx: 16,
        wy: 16,
    };
    /// GPUs, the tiled GEMM's large tiles (`GemmKernel::TiledLarge`): 8x8 blocks in 16x16
    /// workgroups, 128x128 tiles, the usual shape of f32 GEMMs that approach a GPU's peak.
    pub const GPU_LARGE: Blocking = Blocking {
        tm: 8,
        tn: 8,
        wx: 16,
        wy: 16,
    };

    /// The blocks of kernels that share loads by subgroup shuffles on a device with this
    /// register blocking: shared loads make taller blocks pay, so the CPU blocking becomes
    /// `CPU_SUBGROUP`; any other stays as it is (the GPU's 4x4).
    pub fn subgroup_base(&self) -> Blocking {
        if *self == Blocking::CPU {
            Blocking::CPU_SUBGROUP
        } else {
            *self
        }
    }

    /// The subgroup GEMM's blocking (`matmul_subgroup.wgsl`) for a `rows` x `cols` output on
    /// a device with this register blocking whose subgroups have `lanes` = [fewest, most]
    /// lanes (powers of two): `subgroup_base`, made to `fits_subgroups` (WX ≤ fewest, the
    /// workgroup a multiple of the most, the row block a multiple of 4) and fitted to the
    /// output as the register kernel's blocks are.
    pub fn subgroup(&self, lanes: [u32; 2], rows: usize, cols: usize) -> Blocking {
        let [fewest, most] = lanes.map(|l| l as usize);
        let base = self.subgroup_base();
        let wx = base.wx.min(fewest);
        let invocations = (base.wx * base.wy).max(most);
        let mut b = Blocking {
            wx,
            wy: invocations / wx,
            ..base
        }
        .fit_fine(rows, cols)
        .narrow(cols);
        b.tm = b.tm.next_multiple_of(4);
        b
    }

    /// This blocking with its rows of invocations (WY) halved while half the tile still covers
    /// `rows` and the workgroup stays a multiple of `most` lanes (a subgroup kernel's tiles
    /// fitted to a grouped GEMM's groups).
    pub fn fewer_row_groups(&self, rows: usize, most: usize) -> Blocking {
        let mut b = *self;
        while b.wy > 1 && b.tm * (b.wy / 2) >= rows && (b.wx * (b.wy / 2)).is_multiple_of(most) {
            b.wy /= 2;
        }
        b
    }

    /// This blocking adapted to a `rows` x `cols` output. Invocations whose rows all lie past
    /// the end exit at once, so only waste *inside* an invocation's block costs: its row block
    /// shrinks while half of it still covers every row (depthwise: 1 row), and its column
    /// count is chosen by a cost model in which a load costs ~16 FMAs (measured on lavapipe:
    /// 16x32 blocks run twice as fast as 8x8), counting the partly filled last column tile.
    pub fn fit(&self, rows: usize, cols: usize) -> Blocking {
        let halvings = std::iter::successors(Some(self.tn), |t| Some(t / 2));
        self.fit_among(rows, cols, halvings.take_while(|&t| t >= 4))
    }

    /// `fit`, with the column count free among every multiple of 4 up to `tn`, not only its
    /// halvings: for per-sample convolutions, whose columns are one sample's positions (784,
    /// 196) and would leave a quarter of 256-column tiles empty (784 = 5 × 160 − 16), and for
    /// GEMMs, whose widths (MiniLM's 384, a PAD-MoE split's 192 rows) leave the last 256- or
    /// 128-column tile a half or a quarter empty (measured on lavapipe: MiniLM's FFN output
    /// GEMM 1.7× faster). More shader variants, so only where that waste is measured.
    pub fn fit_fine(&self, rows: usize, cols: usize) -> Blocking {
        self.fit_among(rows, cols, (1..=self.tn / 4).rev().map(|q| 4 * q))
    }

    /// `fit_fine`, with the columns free to take the registers that few rows give up: where
    /// the row block shrinks to fit the rows, the column block may grow up to twice its width
    /// while TM·TN stays within the base's (wider blocks would only lengthen the shader's
    /// compile). For the convolution weight gradient with shuffles, whose rows are output
    /// channels: ResNet-10 ×0.25's 16→16 layers (16 rows, 144 columns) run as 16×20 blocks,
    /// one tile of 160 columns, not 16×16 in two tiles of 128 (lavapipe, 5 interleaved
    /// rounds, medians: 12.9 → 19.0 GFLOP/s).
    pub fn fit_fine_wide(&self, rows: usize, cols: usize) -> Blocking {
        let wide = Blocking {
            tn: (self.tn * self.tm / self.rows_fitted(rows)).min(2 * self.tn),
            ..*self
        };
        wide.fit_fine(rows, cols)
    }

    /// The row block `fit` gives `rows`: halved while half of it still covers every row.
    fn rows_fitted(&self, rows: usize) -> usize {
        let mut tm = self.tm;
        while tm > 1 && tm / 2 >= rows {
            tm /= 2;
        }
        tm
    }

    /// `fit`, then the row count free among 1..=tm (`fine_rows`): for per-sample convolutions
    /// run transposed (forward and input gradient), whose rows are one sample's positions (49
    /// at 7×7: 4 blocks of 13 rows cover 52 where blocks of 16 cover 64).
    pub fn fit_rows_fine(&self, rows: usize, cols: usize) -> Blocking {
        self.fit(rows, cols).fine_rows(rows)
    }

    /// This blocking with its row count free among 1..=tm, by the same cost model counting
    /// only blocks with a row: also for per-sample convolutions over few filters (a split
    /// layer's 9 dynamic filters: one block of 9 rows, not 16 of which 7 are clamped copies).
    pub fn fine_rows(mut self, rows: usize) -> Blocking {
        let cost = |tm: usize| rows.div_ceil(tm) * block_cost(tm, self.tn);
        self.tm = (1..=self.tm)
            .rev()
            .min_by_key(|&tm| cost(tm))
            .expect("tm ≥ 1");
        self
    }

    /// For a per-sample convolution over `rows` filters and `positions` positions per sample
    /// that would otherwise run as `spread` (one sample's positions over the lanes): the
    /// blocking with the samples as lanes (`forward_s`: each invocation `spread.tm` filters at
    /// `tn` consecutive positions of one sample, `tn` up to this blocking's) if the cost model
    /// prices it 20 % below `spread`, else None. Few positions (16 at 4×4: half of each 8-lane
    /// column block clamped) or few filters are where it wins.
    pub fn fit_samples_as_lanes(
        &self,
        spread: Blocking,
        rows: usize,
        positions: usize,
    ) -> Option<Blocking> {
        let row_blocks = rows.div_ceil(spread.tm);
        let spread_cost = row_blocks
            * positions.div_ceil(spread.tn * spread.wx)
            * spread.wx
            * block_cost(spread.tm, spread.tn);
        let lanes_cost =
            |tn: usize| row_blocks * positions.div_ceil(tn) * block_cost(spread.tm, tn);
        let tn = (1..=self.tn / 4)
            .map(|q| 4 * q)
            .min_by_key(|&tn| lanes_cost(tn))?;
        // Only a clear win: the model does not see that neighbouring lanes then read
        // different samples' inputs and weights.
        (lanes_cost(tn) * 5 < spread_cost * 4).then_some(Blocking { tn, ..spread })
    }

    fn fit_among(&self, rows: usize, cols: usize, tns: impl Iterator<Item = usize>) -> Blocking {
        let mut b = *self;
        b.tm = self.rows_fitted(rows);
        let cost = |tn: usize| cols.div_ceil(tn * b.wx) * block_cost(b.tm, tn);
        // The first of equal costs wins: the larger block.
        let mut best = self.tn;
        for tn in tns {
            if cost(tn) < cost(best) {
                best = tn;
            }
        }
        b.tn = best;
        b
    }

    /// For outputs narrower than a tile (MoE routers: E = 8 columns), moves invocations from
    /// columns to rows: the lanes past the last column would compute clamped duplicates
    /// (4× the work at 8 columns with CPU blocks). The workgroup keeps its size.
    pub fn narrow(&self, cols: usize) -> Blocking {
        let mut b = *self;
        while b.wx > 1 && b.tn * (b.wx / 2) >= cols {
            b.wx /= 2;
            b.wy *= 2;
        }
        b
    }

    /// GPUs, a per-sample convolution whose columns (one sample's positions: 16 at 4×4) are
    /// fewer than a tile's: `narrow`, and one row per invocation, so that no lane of a
    /// workgroup idles and a chunk of samples has 4× the working invocations. On an H200 it
    /// made ResNet-18's DY-Conv per-sample convolutions 5 % faster (forward 59 → 56 ms per
    /// step, input gradient 67 → 63): their limit was the chunks, not the lanes
    /// (`PlanCtx::chunk_bytes`).
    pub fn few_columns_on_gpu(&self, cols: usize) -> Blocking {
        if cols >= self.cols() {
            return *self;
        }
        Blocking {
            tm: 1,
            ..self.narrow(cols)
        }
    }

    /// `cpu`, `gpu`, or `TMxTNxWXxWY` (e.g. `8x16x16x8`); TN a multiple of 4, ≤ 256 invocations.
    pub fn parse(spec: &str) -> crate::Result<Blocking> {
        let b = match spec {
            "cpu" => Blocking::CPU,
            "gpu" => Blocking::GPU,
            _ => {
                let v: Vec<usize> = spec.split('x').filter_map(|p| p.parse().ok()).collect();
                let [tm, tn, wx, wy] = v[..] else {
                    return Err(crate::Error::Invalid(format!(
                        "blocking '{spec}': expected cpu, gpu or TMxTNxWXxWY"
                    )));
                };
                Blocking { tm, tn, wx, wy }
            }
        };
        if b.tm == 0 || b.tn == 0 || b.tn % 4 != 0 || b.wx * b.wy == 0 || b.wx * b.wy > 256 {
            return Err(crate::Error::Invalid(format!(
                "blocking {b:?}: need TM ≥ 1, TN a multiple of 4, 1..=256 invocations"
            )));
        }
        Ok(b)
    }

    pub fn rows(&self) -> usize {
        self.tm * self.wy
    }
    pub fn cols(&self) -> usize {
        self.tn * self.wx
    }
    /// The template parameters of a kernel with this blocking, with three switches off: SG
    /// (the convolution weight gradient shares dy by subgroup shuffles, `KernelCall::shuffles`),
    /// F16 (GEMMs and the convolution forward multiply in f16, `KernelCall::precision`) and
    /// F16_B (they read their weights from the f16 copy of the parameters,
    /// `KernelCall::half_weights`); RY = 1, the output rows of the convolution's sliding
    /// window (`KernelCall::window_rows`); and WS = 0 (the window's weights loaded by every
    /// lane rather than broadcast, `KernelCall::broadcast_rows`), with samples as its lanes
    /// (WC = 0; chunks of one sample with `KernelCall::chunk_lanes`).
    pub fn template(&self) -> [(&'static str, u32); 11] {
        [
            ("TM", self.tm as u32),
            ("TN", self.tn as u32),
            ("WX", self.wx as u32),
            ("WY", self.wy as u32),
            ("SG", 0),
            ("F16", 0),
            ("F16_B", 0),
            ("RY", 1),
            ("WS", 0),
            ("WC", 0),
            ("RB", 0),
        ]
    }

    /// Whether a kernel with this blocking can share loads along its rows of invocations by
    /// subgroup shuffles on a device whose subgroups have `lanes` = [fewest, most] lanes: a
    /// row of WX invocations must lie in one subgroup, the workgroup hold whole subgroups, and
    /// the row block be a multiple of 4 (shuffled as vec4s).
    pub fn fits_subgroups(&self, [fewest, most]: [u32; 2]) -> bool {
        self.wx <= fewest as usize
            && (self.wx * self.wy).is_multiple_of(most as usize)
            && self.tm.is_multiple_of(4)
    }
}

/// The cost of one invocation's tm x tn block per step of the reduction in the fitting model:
/// tm + tn loads at `LOAD_COST` FMAs each, plus tm·tn FMAs.
fn block_cost(tm: usize, tn: usize) -> usize {
    (tm + tn) * LOAD_COST + tm * tn
}

/// What one storage load costs in FMAs in the blocking cost models (measured on lavapipe:
/// 16x32 blocks run twice as fast as 8x8); also `conv::window::window_shape`'s.
pub const LOAD_COST: usize = 16;

#[cfg(test)]
mod tests {
    use super::Blocking;

    /// A grouped GEMM's subgroup tiles (32 rows per row of invocations, 8 × 4 invocations)
    /// shrink to the groups: 64 rows of MiniLM's experts take two rows of invocations, 6 rows
    /// one; a workgroup never falls below a multiple of the subgroup (32 lanes: all four).
    #[test]
    fn grouped_tiles_fit_their_groups() {
        let b = Blocking::CPU_SUBGROUP;
        assert_eq!((b.wx, b.wy, b.tm), (8, 4, 32));
        assert_eq!(b.fewer_row_groups(64, 8).wy, 2);
        assert_eq!(b.fewer_row_groups(6, 8).wy, 1);
        assert_eq!(b.fewer_row_groups(100, 8).wy, 4);
        assert_eq!(b.fewer_row_groups(6, 32).wy, 4);
    }

    /// One sample's 28×28 positions: 256-column tiles cover 1 024 columns for 784, the fine fit
    /// 5 × 160 = 800; 14×14: one 224-column tile instead of 256. Wide outputs keep full tiles.
    #[test]
    fn fine_fit_wastes_fewer_columns() {
        let cpu = Blocking::CPU;
        assert_eq!(cpu.fit(16, 784).tn, 32);
        assert_eq!(cpu.fit_fine(16, 784).tn, 20);
        assert_eq!(cpu.fit_fine(32, 196).tn, 28);
        assert_eq!(cpu.fit_fine(16, 500 * 784).tn, 32);
        assert_eq!(Blocking::GPU.fit_fine(16, 784), Blocking::GPU.fit(16, 784));
        // GEMMs: 384 columns in 2 tiles of 192, a split's 192 rows (x·Wᵀ) in 2 of 96.
        assert_eq!(cpu.fit_fine(1024, 384).tn, 24);
        assert_eq!(Blocking::CPU_TRANS_B.fit(1024, 192).tn, 16);
        assert_eq!(Blocking::CPU_TRANS_B.fit_fine(1024, 192).tn, 12);
    }

    /// The weight gradient's blocks over few output channels: 16 rows of 144 columns in one
    /// 16×20 block tile (columns take the registers the rows gave up), at most twice as wide;
    /// enough rows keep the base block.
    #[test]
    fn few_rows_widen_the_block() {
        let sub = Blocking::CPU_SUBGROUP;
        let b = sub.fit_fine_wide(16, 144);
        assert_eq!((b.tm, b.tn), (16, 20));
        assert_eq!(sub.fit_fine_wide(4, 4096).tn, 32);
        assert_eq!(sub.fit_fine_wide(64, 576), sub.fit_fine(64, 576));
    }

    /// Transposed per-sample convolutions: 49 positions (7×7) in 4 blocks of 13 rows, 16
    /// positions (4×4) in one block of 16.
    #[test]
    fn fine_row_fit_wastes_fewer_positions() {
        let cpu = Blocking::CPU;
        assert_eq!(cpu.fit_rows_fine(49, 64).tm, 13);
        assert_eq!(cpu.fit_rows_fine(16, 128).tm, 16);
        assert_eq!(cpu.fit_rows_fine(49, 64).tn, cpu.fit(49, 64).tn);
        // A split layer's few dynamic filters over one sample's 7×7 positions.
        assert_eq!(cpu.fit_fine(9, 49).fine_rows(9).tm, 9);
        assert_eq!(cpu.fit_fine(3, 49).fine_rows(3).tm, 3);
    }

    #[test]
    fn samples_as_lanes_where_a_sample_leaves_lanes_idle() {
        let cpu = Blocking::CPU;
        // The per-sample forward's blocking with one sample's positions as columns.
        let lanes = |rows, positions| {
            let spread = cpu.fit_fine(rows, positions).fine_rows(rows);
            cpu.fit_samples_as_lanes(spread, rows, positions)
        };
        // 4×4: one sample's 16 positions as columns fill half of each 8-lane block.
        let b = lanes(6, 16).expect("cheaper at 4×4");
        assert_eq!((b.tm, b.tn), (6, 16));
        assert_eq!(lanes(9, 49).map(|b| b.tn), Some(28));
        // 14×14 and 28×28: the positions fill the lanes already.
        assert!(lanes(10, 196).is_none());
        assert!(lanes(64, 784).is_none());
    }
}
