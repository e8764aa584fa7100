//! `padnet-wgpu imp` of a text (PAD-MoE) checkpoint: IMP on the checkpoint's task, as the
//! training run does it (the same example subset rule), the masks written to a new checkpoint.

use super::eval::{open, Opened};
use super::{encode_set, imp_subset, TextEvalConfig};
use crate::checkpoint;
use crate::dist::Comm;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::imp::{ImpCommand, ImpReport};
use crate::names::Named;
use std::sync::Arc;

/// Partitions the PAD-MoE masks of `c.checkpoint` on `--imp-batches` batches of its task's
/// training examples and writes the checkpoint with the new masks (and κ) to `c.out`. With
/// several data-parallel ranks (`comm`), each scores its share of every batch of
/// `batch_size` × ranks examples; rank 0 alone writes.
pub fn imp_command(gpu: Arc<Gpu>, c: &ImpCommand, comm: Arc<Comm>) -> Result<ImpReport> {
    c.config.validate()?;
    let Opened {
        mut session,
        tok,
        train_set,
        cfg,
        deploy,
        mut meta,
        ..
    } = open(
        gpu,
        &TextEvalConfig {
            checkpoint: c.checkpoint.clone(),
            task: c.task.clone(),
            data_dir: c.data_dir.clone(),
            model_dir: c.model_dir.clone(),
            batch_size: c.batch_size,
            ..Default::default()
        },
        true,
    )?;
    if deploy {
        return Err(Error::data(
            &c.checkpoint,
            "is a deploy file (exported for inference); IMP needs a PAD training checkpoint",
        ));
    }
    if cfg.mode != super::TextMode::Pad {
        return Err(Error::data(
            &c.checkpoint,
            format!(
                "is not a PAD checkpoint (mode {:?}); IMP partitions PAD models",
                cfg.mode.name()
            ),
        ));
    }
    let train_enc = encode_set(&tok, &train_set, cfg.max_len)?;
    let order = imp_subset(
        train_enc.len(),
        c.config.batches * c.batch_size * comm.size(),
        c.config.seed,
    );
    session.comm = comm.clone();
    let examples: Vec<_> = order.iter().map(|&i| &train_enc[i]).collect();
    let targets: Vec<f32> = order.iter().map(|&i| train_set.targets[i]).collect();
    let step = meta.get("step").and_then(|s| s.parse().ok()).unwrap_or(0);
    let report = session.imp(&tok, &examples, &targets, &c.config, step)?;
    if comm.is_root() {
        meta.insert("kappa".into(), report.kappa.to_string());
        checkpoint::save(&c.out, &checkpoint::from_store(&session.store)?, meta)?;
        report.save(&c.report_dir())?;
    }
    Ok(report)
}
