//! CPU references of every op in f64: the oracles the GPU kernels are tested against, and
//! (being f64) precise enough to check gradient rules against finite differences.
//! Used only by tests and debugging. Each family's reference lives next to its kernel
//! (`kernels/NAME/reference.rs`); this module dispatches an op to it.

pub use super::batchnorm::reference as batchnorm;
pub use super::broadcast::reference as broadcast;
pub use super::conv::reference as conv;
pub use super::dynconv::reference as dynconv;
pub use super::elementwise::reference as elementwise;
pub use super::gather::reference as gather;
pub use super::layernorm::reference as layernorm;
pub use super::matmul::reference as matmul;
pub use super::moe::reference as moe;
pub use super::pool::reference as pool;
pub use super::reduce::reference as reduce;
pub use super::softmax::reference as softmax;

use crate::graph::{Op, Tensor};

/// Result of one op on the CPU: its outputs, plus new values of inputs it updates in place.
pub struct Eval {
    pub outputs: Vec<Vec<f64>>,
    pub updates: Vec<(usize, Vec<f64>)>,
}

impl Eval {
    fn outs(outputs: Vec<Vec<f64>>) -> Self {
        Eval {
            outputs,
            updates: vec![],
        }
    }
}

/// The step seed input [seed, rank] (`nn::DROPOUT_SEED`).
fn step_seed(t: &[f64]) -> [u32; 2] {
    [t[0] as u32, t[1] as u32]
}

pub fn eval(op: &Op, ins: &[&[f64]], in_t: &[&Tensor], out_t: &[&Tensor]) -> Eval {
    match op {
        Op::MatMul {
            trans_a,
            trans_b,
            accumulate,
        } => {
            assert!(
                !accumulate,
                "the reference evaluates graphs without in-place accumulation"
            );
            Eval::outs(vec![matmul::matmul(
                *trans_a,
                *trans_b,
                ins[0],
                &in_t[0].shape,
                ins[1],
                &in_t[1].shape,
            )])
        }
        Op::Reshape { .. } => Eval::outs(vec![ins[0].to_vec()]),
        Op::Permute { perm } => Eval::outs(vec![broadcast::permute(ins[0], &in_t[0].shape, perm)]),
        Op::Add => Eval::outs(vec![broadcast::binary(
            ins[0],
            &in_t[0].shape,
            ins[1],
            &in_t[1].shape,
            |a, b| a + b,
        )]),
        Op::Mul => Eval::outs(vec![broadcast::binary(
            ins[0],
            &in_t[0].shape,
            ins[1],
            &in_t[1].shape,
            |a, b| a * b,
        )]),
        Op::SumTo { shape } => Eval::outs(vec![broadcast::sum_to(ins[0], &in_t[0].shape, shape)]),
        Op::Scale(s) => Eval::outs(vec![ins[0].iter().map(|a| *s as f64 * a).collect()]),
        Op::Dropout { p, salt } => Eval::outs(vec![elementwise::dropout(
            ins[0],
            step_seed(ins[1]),
            *salt,
            *p,
        )]),
        Op::Accumulate => Eval {
            outputs: vec![],
            updates: vec![(0, ins[0].iter().zip(ins[1]).map(|(a, b)| a + b).collect())],
        },
        Op::BiasAdd => Eval::outs(vec![elementwise::bias_add(ins[0], &in_t[0].shape, ins[1])]),
        Op::BiasGrad => Eval::outs(vec![reduce::bias_grad(ins[0], &in_t[0].shape)]),
        Op::Unary(a) => Eval::outs(vec![ins[0]
            .iter()
            .map(|&x| elementwise::act(*a, x))
            .collect()]),
        Op::UnaryGrad(a) => Eval::outs(vec![ins[0]
            .iter()
            .zip(ins[1])
            .map(|(&x, &dy)| dy * elementwise::act_grad(*a, x))
            .collect()]),
        Op::Sum {
            start, end, mean, ..
        } => Eval::outs(vec![reduce::sum(
            ins[0],
            &in_t[0].shape,
            *start,
            *end,
            *mean,
        )]),
        Op::Expand {
            shape,
            start,
            end,
            mean,
        } => Eval::outs(vec![reduce::expand(ins[0], shape, *start, *end, *mean)]),
        Op::Softmax => Eval::outs(vec![softmax::softmax(
            ins[0],
            *in_t[0].shape.last().unwrap(),
        )]),
        Op::GroupedMatMul { trans_b, by_k, .. } => Eval::outs(vec![moe::grouped_matmul(
            *trans_b,
            *by_k,
            ins[0],
            &in_t[0].shape,
            ins[1],
            &in_t[1].shape,
            ins[2],
        )]),
        Op::MoeRoute { k, capacity } => {
            let (n, e) = (in_t[0].shape[0], in_t[0].shape[1]);
            Eval::outs(moe::route(ins[0], n, e, *k, *capacity).to_vec())
        }
        Op::MoeDispatch => Eval::outs(vec![gather::gather(ins[0], in_t[0].shape[1], ins[1])]),
        Op::MergeChannels => Eval::outs(vec![gather::merge_channels(
            ins[0],
            &in_t[0].shape,
            ins[1],
            &in_t[1].shape,
            ins[2],
        )]),
        Op::MoeCombine { weighted } => {
            let (d, k) = (in_t[0].shape[1], in_t[1].shape[1]);
            let weights = weighted.then(|| moe::CombineWeights {
                gates: ins[3],
                experts: in_t[3].shape[1],
                slot_expert: ins[4],
                bias: ins[5],
            });
            Eval::outs(vec![moe::combine(ins[0], d, ins[1], k, weights)])
        }
        Op::MoeCombineGrad => {
            let (d, k) = (in_t[0].shape[1], in_t[1].shape[1]);
            let w = moe::CombineWeights {
                gates: ins[3],
                experts: in_t[3].shape[1],
                slot_expert: ins[4],
                bias: ins[5],
            };
            Eval::outs(moe::combine_grad(ins[0], d, ins[1], k, w, ins[7]).to_vec())
        }
        Op::RandomNormal { shape, salt } => Eval::outs(vec![moe::random_normal(
            shape.iter().product(),
            step_seed(ins[0]),
            *salt,
        )]),
        Op::MoeLoadProb { k } => {
            let e = *in_t[0].shape.last().unwrap();
            Eval::outs(vec![moe::load_prob(ins[0], ins[1], ins[2], e, *k)])
        }
        Op::MoeLoadProbGrad { k } => {
            let e = *in_t[0].shape.last().unwrap();
            let (dh, dn, ds) = moe::load_prob_grad(ins[0], ins[1], ins[2], ins[3], e, *k);
            Eval::outs(vec![dh, dn, ds])
        }
        Op::CvSquared => Eval::outs(vec![vec![moe::cv_squared(ins[0])]]),
        Op::CvSquaredGrad => Eval::outs(vec![moe::cv_squared_grad(ins[0], ins[1][0])]),
        Op::TopKGates { k } => Eval::outs(vec![softmax::topk_gates(
            ins[0],
            *in_t[0].shape.last().unwrap(),
            *k,
        )]),
        Op::SoftmaxGrad => Eval::outs(vec![softmax::softmax_grad(
            ins[0],
            ins[1],
            *in_t[0].shape.last().unwrap(),
        )]),
        Op::CrossEntropy { smoothing } => {
            let cols = in_t[0].shape[1];
            let (loss, probs, sum, correct) =
                softmax::cross_entropy(ins[0], ins[1], cols, *smoothing as f64);
            let rows = ins[1].len() as f64;
            let m = vec![ins[2][0] + sum, ins[2][1] + correct, ins[2][2] + rows];
            Eval {
                outputs: vec![vec![loss], probs],
                updates: vec![(2, m)],
            }
        }
        Op::MseLoss => {
            let sq: f64 = ins[0]
                .iter()
                .zip(ins[1])
                .map(|(p, t)| (p - t).powi(2))
                .sum();
            let rows = ins[1].len() as f64;
            Eval {
                outputs: vec![vec![sq / rows]],
                updates: vec![(2, vec![ins[2][0] + sq, ins[2][1], ins[2][2] + rows])],
            }
        }
        Op::MseLossGrad => {
            let rows = ins[1].len() as f64;
            Eval::outs(vec![ins[0]
                .iter()
                .zip(ins[1])
                .map(|(p, t)| 2.0 * (p - t) * ins[2][0] / rows)
                .collect()])
        }
        Op::CrossEntropyGrad { smoothing } => {
            let cols = in_t[0].shape[1];
            Eval::outs(vec![softmax::cross_entropy_grad(
                ins[0],
                ins[1],
                ins[2][0],
                cols,
                *smoothing as f64,
            )])
        }
        Op::Conv2d(g) => Eval::outs(vec![conv::forward(g, ins[0], ins[1])]),
        Op::Conv2dGradInput(g) => Eval::outs(vec![conv::grad_input(g, ins[0], ins[1])]),
        Op::Conv2dGradWeight(g) => Eval::outs(vec![conv::grad_weight(g, ins[0], ins[1])]),
        Op::DynConv2d(s) => Eval::outs(dynconv::forward(s, ins)),
        Op::SplitDynConv2d { spec, statics } => {
            Eval::outs(vec![dynconv::split_forward(spec, *statics, ins)])
        }
        Op::DynConv2dGrad(s) => Eval::outs(dynconv::backward(s, ins)),
        Op::PadMix(s) => Eval::outs(dynconv::mix_forward(s, ins)),
        Op::PadMixGrad(s) => Eval::outs(dynconv::mix_backward(s, ins)),
        Op::BatchNorm {
            eps,
            momentum,
            train,
            act,
        } => batchnorm::batchnorm(
            ins,
            &in_t[0].shape,
            *eps as f64,
            *momentum as f64,
            *train,
            *act,
        ),
        Op::BatchNormGrad { act, eval, eps } => Eval::outs(batchnorm::batchnorm_grad(
            ins,
            &in_t[0].shape,
            *act,
            eval.then_some(*eps as f64),
        )),
        Op::LayerNorm { eps } => {
            Eval::outs(layernorm::forward(ins[0], ins[1], ins[2], *eps as f64))
        }
        Op::LayerNormGrad => {
            Eval::outs(layernorm::backward(ins[0], ins[1], ins[2], ins[3], ins[4]))
        }
        Op::Embedding => Eval::outs(vec![gather::gather(ins[0], in_t[0].shape[1], ins[1])]),
        Op::EmbeddingGrad { vocab } => {
            let d = *in_t[0].shape.last().unwrap();
            Eval::outs(vec![gather::scatter_grad(ins[0], d, ins[1], *vocab)])
        }
        Op::MaxPool2d(g) => {
            let (y, arg) = pool::max_forward(g, ins[0]);
            Eval::outs(vec![y, arg])
        }
        Op::MaxPool2dGrad(g) => Eval::outs(vec![pool::max_backward(g, ins[0], ins[1])]),
        Op::AvgPool2d(g) => Eval::outs(vec![pool::avg_forward(g, ins[0])]),
        Op::AvgPool2dGrad(g) => Eval::outs(vec![pool::avg_backward(g, ins[0])]),
    }
    .check(out_t)
}

impl Eval {
    fn check(self, out_t: &[&Tensor]) -> Self {
        debug_assert_eq!(self.outputs.len(), out_t.len());
        for (o, t) in self.outputs.iter().zip(out_t) {
            debug_assert_eq!(o.len(), t.numel(), "reference output size of {}", t.name);
        }
        self
    }
}
