//! IMP of a text session's PAD-MoE masks (docs/method.md §2): the scoring graph and the
//! rounds.

use super::*;

/// IMP's scoring graph of a text model (see [`TextSession::score_graph`]).
struct ScoreGraph {
    exe: Executable,
    inputs: BertInputs,
    labels: TensorId,
    /// The padded length of every scored batch.
    len: usize,
    /// Per PAD layer: the ∂L/∂M accumulator and the router gates [tokens, E].
    accs: Vec<TensorId>,
    gates: Vec<TensorId>,
}

/// The router gates [tokens, E] of the PAD-MoE layer whose mask is `mask`: the mix node reads
/// the mask, a grouped matmul multiplies the tokens by the mixed experts, and the route that
/// groups its rows reads the gates (padding tokens' rows are zero).
fn gates_of(g: &Graph, mask: TensorId) -> Option<TensorId> {
    let node = |pred: &dyn Fn(&crate::graph::Node) -> bool| g.nodes.iter().find(|n| pred(n));
    let mix = node(&|n| matches!(n.op, Op::PadMix(_)) && n.inputs.get(2) == Some(&mask))?;
    let w = mix.outputs[0];
    let matmul = node(&|n| {
        matches!(n.op, Op::GroupedMatMul { by_k: false, .. }) && n.inputs.get(1) == Some(&w)
    })?;
    let groups = matmul.inputs[2];
    let route =
        node(&|n| matches!(n.op, Op::MoeRoute { .. }) && n.outputs.get(3) == Some(&groups))?;
    Some(route.inputs[0])
}

impl TextSession {
    /// Iterative Mode Partition of the PAD-MoE masks (docs/method.md §2) on `examples` (batches
    /// of the training batch size, evaluation mode: no dropout, clean routing): scores per
    /// round, then exactly round(κ·N) positions stay dynamic (globally or per layer). With
    /// several data-parallel ranks, each scores its share of every global batch and the
    /// ∂L/∂M are summed over the ranks, so every rank partitions the same masks.
    pub fn imp(
        &mut self,
        tok: &TextTokenizer,
        examples: &[&Encoded],
        targets: &[f32],
        cfg: &crate::imp::ImpConfig,
        step: usize,
    ) -> Result<crate::imp::ImpReport> {
        use crate::imp::Scorer;
        let layers = crate::imp::pad_layers(&self.store);
        if layers.is_empty() {
            return Err(Error::Invalid("IMP needs --mode pad".into()));
        }
        if self.static_init == StaticInit::Mean {
            for l in &layers {
                let (w, n, e) = (self.store.read(&l.dynamic)?, l.positions, l.k);
                let mean: Vec<f32> = (0..n)
                    .map(|j| (0..e).map(|k| w[k * n + j]).sum::<f32>() / e as f32)
                    .collect();
                self.store.write(&l.static_weight, &mean)?;
            }
        }
        let comm = self.comm.clone();
        let global_batch = self.batch * comm.size();
        let batches = examples.len() / global_batch;
        let data_scorer = matches!(cfg.scorer, Scorer::Snip | Scorer::Variance);
        if batches == 0 && data_scorer {
            return Err(Error::Invalid(format!(
                "IMP needs at least one batch of {global_batch} examples (--imp-samples)"
            )));
        }
        if cfg.scorer == Scorer::Variance && comm.size() > 1 {
            return Err(Error::Invalid(
                "the variance scorer runs on one rank; use --imp-scorer snip with several".into(),
            ));
        }
        let score_graph = if data_scorer {
            Some(self.score_graph(examples, &layers)?)
        } else {
            None
        };
        let this = &*self;
        let rounds = crate::imp::iterate(&this.store, &layers, cfg, |rng| {
            if let Some(scores) =
                crate::imp::data_free_scores(&this.store, &layers, cfg.scorer, rng)
            {
                return scores;
            }
            let sg = score_graph.as_ref().expect("built for the data scorers");
            let exe = &sg.exe;
            crate::imp::clear_accumulators(exe, &sg.accs)?;
            // Router-gate moments per layer for the variance scorer.
            let mut moments: Vec<MixMoments> =
                layers.iter().map(|l| MixMoments::new(l.k)).collect();
            for b in 0..batches {
                let first = b * global_batch + comm.rank() * this.batch;
                let idx = first..first + this.batch;
                let (feed, _) = tok.pad(&examples[idx.clone()], sg.len);
                feed.write(&sg.inputs, exe)?;
                write_targets(exe, sg.labels, &targets[idx])?;
                exe.run_as(&comm)?;
                if cfg.scorer == Scorer::Variance {
                    for (&gates, m) in sg.gates.iter().zip(moments.iter_mut()) {
                        m.add(&exe.read(gates, &this.store)?);
                    }
                }
            }
            // Scores that cannot rank anything: SNIP's exactly 0, variances at rounding level
            // (1e-9 of the experts' largest mean square) in every layer.
            let (s, degenerate) = if cfg.scorer == Scorer::Variance {
                let mut degenerate = true;
                let mut s = vec![];
                for (l, m) in layers.iter().zip(&moments) {
                    let w = this.store.read(&l.dynamic)?;
                    let v = m.variance_scores(&w);
                    let scale = (0..l.positions)
                        .map(|j| {
                            (0..l.k)
                                .map(|e| (w[e * l.positions + j] as f64).powi(2))
                                .sum::<f64>()
                                / l.k as f64
                        })
                        .fold(0.0, f64::max);
                    degenerate &= v.iter().all(|&x| x <= 1e-9 * scale);
                    s.push(v);
                }
                (s, degenerate)
            } else {
                let s = crate::imp::snip_from_accumulators(exe, &this.store, &sg.accs, &comm)?;
                let degenerate = s.iter().flatten().all(|&v| v == 0.0);
                (s, degenerate)
            };
            if degenerate {
                let why = match cfg.scorer {
                    Scorer::Variance => "the experts are still identical copies (upcycled) or the router sends every token alike",
                    _ => "the static weight equals every expert (pretrained or mean static init before the experts moved)",
                };
                return Err(Error::Invalid(format!(
                    "every {} score is 0: {why}; run IMP after a warm-up (--imp-after STEPS){}",
                    cfg.scorer.name(),
                    if cfg.scorer == Scorer::Snip {
                        " or use --static-init independent"
                    } else {
                        ""
                    }
                )));
            }
            Ok(s)
        })?;
        if comm.is_root() {
            println!(
                "IMP of the PAD-MoE masks at training step {step} on {} examples (static init {}):",
                batches * global_batch,
                format!("{:?}", self.static_init).to_lowercase()
            );
        }
        let mut report = crate::imp::report(&self.store, cfg)?;
        report.rounds = rounds;
        Ok(report)
    }

    /// The scoring graph of IMP: evaluation-mode classifier on batches padded to one length,
    /// its training objective (cross-entropy + balance penalties), the backward pass, per
    /// mask an accumulator of ∂L/∂M over the scored batches, and each layer's router gates.
    fn score_graph(
        &self,
        examples: &[&Encoded],
        layers: &[crate::imp::PadLayer],
    ) -> Result<ScoreGraph> {
        let longest = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        let len = longest.div_ceil(LEN_STEP) * LEN_STEP;
        let mut g = Graph::new();
        let mut b = Builder::new(&mut g, false);
        b.ranks = self.comm.size();
        let mut inputs = BertInputs::new(&mut b, self.batch, len);
        if !self.route_padding {
            inputs = inputs.with_token_mask(&mut b);
        }
        let (logits, aux) = classifier(&mut b, &self.bert, &inputs, self.classes, self.moe)?;
        let metrics = g.input("imp_metrics", &[3], DType::F32);
        let (labels, _) = objective(&mut g, logits, &aux, self.regression, metrics)?;
        let (mut accs, mut gates) = (vec![], vec![]);
        for crate::imp::PadLayer { mask, .. } in layers {
            let m = g.find(mask).expect("mask built by the model");
            let layer_gates = gates_of(&g, m).expect("a PAD-MoE layer is routed");
            g.mark_output(layer_gates);
            gates.push(layer_gates);
            let dm = *g
                .mask_grads
                .get(&m)
                .expect("PAD-MoE records the mask gradient");
            let shape = g.shape(m).to_vec();
            let acc = g.input(&format!("imp_score.{mask}"), &shape, DType::F32);
            g.push(Op::Accumulate, &[acc, dm])?;
            accs.push(acc);
        }
        let exe = Executable::compile_ranks(self.gpu.clone(), g, &self.store, self.comm.size())?;
        Ok(ScoreGraph {
            exe,
            inputs,
            labels,
            len,
            accs,
            gates,
        })
    }
}
