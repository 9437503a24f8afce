//! The PPO update of an RL step: the old log-probs of every mini-batch from the training model
//! first (so ratios start at exactly 1), then one pass of PPO-clip updates with truncated
//! importance sampling toward the sampler's own log-probs, an optional KL to the frozen
//! reference, and global gradient-norm clipping.

use crate::batch::TokenBatch;
use crate::estimator::TrainRow;
use crate::loss::{ppo_loss, PpoConfig};
use crate::optim::AdamW;
use crate::recipe::RlSection;
use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use kaizen_core::Trajectory;
use kaizen_models::trainable::TrainableLm;

/// What one update reports (means over its mini-batches; `gap` and `capped` over its tokens).
#[derive(Debug, Default)]
pub(super) struct UpdateStats {
    pub loss: f64,
    pub kl: f64,
    pub clip_fraction: f64,
    pub grad_norm: f64,
    /// Mean `|log π_old − log π_behav|` and the share of tokens whose importance weight hit
    /// the cap.
    pub behaviour_gap: f64,
    pub tis_capped: f64,
    /// Token positions (padding included) the updates ran on.
    pub tokens: usize,
}

/// PPO-clip updates of `policy` on `rows` of `trajs` (`rows[i].t` indexes `trajs`).
///
/// Rows with zero advantage carry no policy gradient (METHODS.md §2): without a KL term they
/// are left out, so they neither dilute the token mean nor take an optimizer step (whose
/// momentum and weight decay would still move the policy) — DAPO's filter.
pub(super) fn update(
    policy: &TrainableLm,
    reference: Option<&TrainableLm>,
    opt: &mut AdamW,
    trajs: &[&Trajectory],
    rows: &[TrainRow],
    rl: &RlSection,
    ppo: &PpoConfig,
) -> crate::Result<UpdateStats> {
    let dev = Device::Cpu;
    let order: Vec<&TrainRow> =
        rows.iter().filter(|r| !trajs[r.t].token_ids.is_empty() && (!r.adv.is_zero() || reference.is_some())).collect();
    let mut batches = Vec::new();
    let (mut gap_sum, mut capped_sum, mut gap_tokens) = (0.0f64, 0.0f64, 0.0f64);
    for chunk in order.chunks(rl.minibatch) {
        let seqs: Vec<(&[u32], &[u8])> = chunk
            .iter()
            .map(|r| (trajs[r.t].token_ids.as_slice(), r.mask.as_deref().unwrap_or(&trajs[r.t].loss_mask)))
            .collect();
        let series: Vec<Vec<f32>> = chunk
            .iter()
            .map(|r| {
                let t = trajs[r.t];
                r.adv.series(t.token_ids.len()).map_err(|e| crate::RlError::Input(format!("{}: {e}", t.episode_id)))
            })
            .collect::<crate::Result<_>>()?;
        // The sampler's own log-probs of the same tokens (the behaviour policy).
        let behaviour: Vec<Vec<f32>> = chunk.iter().map(|r| trajs[r.t].logprobs.clone()).collect();
        let batch = TokenBatch::new(&seqs, &[series, behaviour], 0, &dev)?
            .showing(chunk.iter().map(|r| trajs[r.t].token_pictures.clone()).collect());
        let old = policy.token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, rl.temperature)?.detach();
        // Truncated importance sampling, `w_t = min(π_old / π_behav, C)`, folded into the
        // advantage: w > 0 scales both PPO terms alike, so `min(ρÂ, clip(ρ)Â)·w` is the
        // clipped objective of `Â·w`.
        let gap = (&old - &batch.values[1])?;
        let weight = gap.exp()?.minimum(rl.tis_cap as f64)?;
        let adv = (&batch.values[0] * &weight)?;
        let written = batch.mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
        gap_sum += (gap.abs()? * &batch.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
        capped_sum +=
            (weight.ge(rl.tis_cap as f64)?.to_dtype(DType::F32)? * &batch.mask)?.sum_all()?.to_scalar::<f32>()? as f64;
        gap_tokens += written;
        let eps: Vec<f32> = chunk.iter().map(|r| r.eps).collect();
        let eps = Tensor::from_vec(eps, (chunk.len(), 1), &dev)?;
        batches.push((batch, old, eps, adv));
    }
    let mut s = UpdateStats::default();
    for (batch, old, rows, adv) in &batches {
        let logp = policy.token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, rl.temperature)?;
        let reference_lp = match reference {
            Some(r) => {
                Some(r.token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, rl.temperature)?.detach())
            }
            None => None,
        };
        let (loss, stats) = ppo_loss(&logp, old, reference_lp.as_ref(), adv, &batch.mask, Some(rows), ppo)?;
        let mut grads = loss.backward()?;
        s.grad_norm += clip_gradients(&mut grads, &policy.vars().all_vars(), rl.grad_clip)?;
        opt.step(&grads)?;
        s.loss += loss.to_scalar::<f32>()? as f64;
        s.kl += stats.kl as f64;
        s.clip_fraction += stats.clip_fraction as f64;
        s.tokens += batch.ids.elem_count();
    }
    let nb = batches.len().max(1) as f64;
    s.loss /= nb;
    s.kl /= nb;
    s.clip_fraction /= nb;
    s.grad_norm /= nb;
    s.behaviour_gap = gap_sum / gap_tokens.max(1.0);
    s.tis_capped = capped_sum / gap_tokens.max(1.0);
    Ok(s)
}

/// Scales all gradients so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping.
fn clip_gradients(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> candle_core::Result<f64> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let f = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * f)?);
            }
        }
    }
    Ok(norm)
}
