//! Iterative Mode Partition: exact κ for global and local scope in every round, monotone
//! rounds never revive a position, and SNIP scores predict how much the loss responds when
//! positions switch from dynamic to static.

mod common;
use padnet_wgpu::data::{self, Source};
use padnet_wgpu::executor::ParamStore;
use padnet_wgpu::imp::{self, Granularity, ImpConfig, ImpData, RoundSchedule, Scope, Scorer};
use padnet_wgpu::train::{Session, TrainConfig};
use std::sync::Arc;

fn tiny_pad() -> (Session, Arc<data::ImageSet>) {
    let cfg = TrainConfig {
        model: "resnet10".into(),
        mode: padnet_wgpu::nn::dynamic::ConvMode::Pad,
        width: 0.0625,
        stem: padnet_wgpu::models::Stem::Cifar,
        batch_size: 16,
        eval_batch_size: 16,
        ..TrainConfig::default()
    };
    let mut set = data::fashion_mnist(&Source::Embedded, true).unwrap();
    set.truncate(64);
    (
        Session::new(common::gpu(), &cfg, [1, 28, 28], 10).unwrap(),
        Arc::new(set),
    )
}

/// Scoring data: batches of 16 of `set` at T = 31, no label smoothing.
fn imp_data(set: &Arc<data::ImageSet>) -> ImpData<'_> {
    ImpData {
        train: set,
        batch: 16,
        smoothing: 0.0,
        temperature: 31.0,
        comm: padnet_wgpu::dist::Comm::alone(),
        local_bn: false,
    }
}

fn imp_cfg(kappa: f64, scope: Scope, rounds: usize, monotone: bool) -> ImpConfig {
    ImpConfig {
        kappa,
        scorer: Scorer::Snip,
        scope,
        granularity: Granularity::Element,
        rounds,
        schedule: RoundSchedule::Exponential,
        batches: 2,
        monotone,
        train_mode: false,
        seed: 3,
    }
}

fn masks(store: &ParamStore) -> Vec<Vec<f32>> {
    imp::pad_layers(store)
        .iter()
        .map(|l| store.read(&l.mask).unwrap())
        .collect()
}

#[test]
fn kappa_is_exact_every_round_and_monotone_never_revives() {
    for scope in [Scope::Global, Scope::Local] {
        for monotone in [false, true] {
            let (s, set) = tiny_pad();
            let data = imp_data(&set);
            let cfg = imp_cfg(0.3, scope, 3, monotone);
            let rep = imp::run(s.gpu.clone(), &s.store, &s.model, &data, &cfg).unwrap();
            assert_eq!(rep.rounds.len(), 3);
            for r in &rep.rounds {
                assert_eq!(
                    r.dynamic, r.expected,
                    "{scope:?} monotone={monotone} round {}: {r:?}",
                    r.round
                );
                if monotone {
                    assert_eq!(r.revived, 0, "monotone round {} revived positions", r.round);
                }
            }
            // The store holds the last round's masks, exactly κ of them dynamic.
            let m = masks(&s.store);
            let layers = imp::pad_layers(&s.store);
            let count = |v: &[f32]| v.iter().filter(|&&x| x == 1.0).count();
            assert!(m.iter().flatten().all(|&x| x == 0.0 || x == 1.0));
            match scope {
                Scope::Global => {
                    let total: usize = layers.iter().map(|l| l.positions).sum();
                    assert_eq!(
                        m.iter().map(|v| count(v)).sum::<usize>(),
                        (0.3 * total as f64).round() as usize
                    );
                }
                Scope::Local => {
                    for (v, l) in m.iter().zip(&layers) {
                        assert_eq!(
                            count(v),
                            (0.3 * l.positions as f64).round() as usize,
                            "{}",
                            l.layer
                        );
                    }
                }
            }
            assert!((rep.kappa - 0.3).abs() < 1e-3, "{}", rep.kappa);
        }
    }
}

#[test]
fn filter_granularity_keeps_whole_filters_and_exact_kappa_of_them() {
    let (s, set) = tiny_pad();
    let data = imp_data(&set);
    let cfg = ImpConfig {
        granularity: Granularity::Filter,
        ..imp_cfg(0.3, Scope::Global, 1, false)
    };
    let rep = imp::run(s.gpu.clone(), &s.store, &s.model, &data, &cfg).unwrap();
    let layers = imp::pad_layers(&s.store);
    let filters: usize = layers.iter().map(|l| l.dims[0]).sum();
    let mut dynamic_filters = 0;
    for (m, l) in masks(&s.store).iter().zip(&layers) {
        // PAD-Conv masks [1, O, C, 3, 3] are grouped as [O, C, 9].
        assert_eq!(
            l.dims[0] * l.dims[1] * l.dims[2],
            l.positions,
            "{}",
            l.layer
        );
        let per_filter = l.dims[1] * l.dims[2];
        for f in m.chunks(per_filter) {
            assert!(f.iter().all(|&v| v == f[0]), "{}: a filter split", l.layer);
            dynamic_filters += (f[0] == 1.0) as usize;
        }
    }
    let want = (0.3 * filters as f64).round() as usize;
    assert_eq!(dynamic_filters, want);
    assert_eq!(
        (rep.rounds[0].dynamic, rep.rounds[0].expected),
        (want, want)
    );
}

#[test]
fn snip_scores_predict_the_loss_response() {
    let (s, set) = tiny_pad();
    let data = imp_data(&set);
    let cfg = imp_cfg(1.0, Scope::Global, 1, false);
    let (l0, scores) = imp::snip_scores(s.gpu.clone(), &s.store, &s.model, &data, &cfg).unwrap();
    let layers = imp::pad_layers(&s.store);
    let mut order: Vec<(usize, usize)> = (0..scores.len())
        .flat_map(|l| (0..scores[l].len()).map(move |j| (l, j)))
        .collect();
    order.sort_by(|a, b| scores[b.0][b.1].total_cmp(&scores[a.0][a.1]));
    let m = 40; // positions switched to static
    let loss_with_static = |positions: &[(usize, usize)]| {
        let mut masks = masks(&s.store);
        for &(l, j) in positions {
            masks[l][j] = 0.0;
        }
        for (l, mk) in layers.iter().zip(&masks) {
            s.store.write(&l.mask, mk).unwrap();
        }
        let (loss, _) = imp::snip_scores(s.gpu.clone(), &s.store, &s.model, &data, &cfg).unwrap();
        for l in &layers {
            s.store.write(&l.mask, &vec![1.0; l.positions]).unwrap();
        }
        loss
    };
    let top = loss_with_static(&order[..m]);
    let bottom = loss_with_static(&order[order.len() - m..]);
    // SNIP ranks by |dL/dM|, the first-order size of the change: the highest-scored switch moves
    // the loss far more than the lowest-scored one, which barely moves it.
    let (d_top, d_bottom) = ((top - l0).abs(), (bottom - l0).abs());
    assert!(
        d_top > 10.0 * d_bottom,
        "|ΔL| top {d_top:.3e} vs bottom {d_bottom:.3e} (L0 {l0})"
    );
}
