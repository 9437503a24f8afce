//! The token-level PPO-clip loss with a KL penalty to a frozen reference (`METHODS.md` §2),
//! on candle tensors so that it differentiates through the policy's log-probs.

use candle_core::{Result, Tensor, D};

/// How per-token losses are averaged into one number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalisation {
    /// `Σ_{b,t} l·m / Σ_{b,t} m` — every model-written token weighs the same (GRPO as run by
    /// AXPO and DAPO: "token-level").
    TokenMean,
    /// `mean_b (Σ_t l·m / Σ_t m)` — each sequence weighs the same (GRPO as first published).
    SequenceMean,
    /// `Σ_{b,t} l·m / (B · L)` with a constant `L` (Dr.GRPO: no per-sequence length
    /// normalisation, so long wrong answers are not favoured).
    Constant(f32),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpoConfig {
    pub eps_low: f32,
    pub eps_high: f32,
    /// KL penalty weight `β` (0 = no reference model needed).
    pub beta: f32,
    pub normalisation: Normalisation,
}

impl Default for PpoConfig {
    /// AXPO's settings: `ε_low = 0.2`, `ε_high = 0.4`, `β = 1e-3`, token-level mean.
    fn default() -> Self {
        PpoConfig { eps_low: 0.2, eps_high: 0.4, beta: 1e-3, normalisation: Normalisation::TokenMean }
    }
}

/// Diagnostics of one loss evaluation, over the masked (model-written) tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossStats {
    /// Share of tokens where the clipped term is the one taken (the clip binds).
    pub clip_fraction: f32,
    /// Mean `k3` KL estimate to the reference.
    pub kl: f32,
    /// Mean importance ratio `ρ`.
    pub ratio: f32,
}

/// The PPO-clip loss. All inputs are `[B, T]`: `logp` the current policy's log-probs of the
/// taken tokens (differentiated), `old_logp` those at sampling time, `ref_logp` the frozen
/// reference's (ignored when `β = 0`), `adv` each token's advantage, `mask` 1 on
/// model-written tokens (0 on prompt, observations and padding). `eps_high_rows` (`[B, 1]`)
/// overrides `ε_high` per sequence (ADPO).
///
/// Per token, with `ρ_t = exp(logp_t − old_t)`:
/// `l_t = −min(ρ_t Â_t, clip(ρ_t, 1 − ε_low, 1 + ε_high) Â_t) + β · k3_t`,
/// `k3_t = exp(ref_t − logp_t) − (ref_t − logp_t) − 1`,
/// averaged as `cfg.normalisation` says.
pub fn ppo_loss(
    logp: &Tensor,
    old_logp: &Tensor,
    ref_logp: Option<&Tensor>,
    adv: &Tensor,
    mask: &Tensor,
    eps_high_rows: Option<&Tensor>,
    cfg: &PpoConfig,
) -> Result<(Tensor, LossStats)> {
    let ratio = (logp - old_logp)?.exp()?;
    let low = 1.0 - cfg.eps_low as f64;
    let clipped = match eps_high_rows {
        Some(rows) => {
            let high = (rows + 1.0)?.broadcast_as(ratio.shape())?;
            ratio.maximum(low)?.minimum(&high)?
        }
        None => ratio.clamp(low, 1.0 + cfg.eps_high as f64)?,
    };
    let surr1 = (&ratio * adv)?;
    let surr2 = (&clipped * adv)?;
    let mut per_token = surr1.minimum(&surr2)?.neg()?;
    let mut kl_mean = 0.0;
    let n_tokens = mask.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?.max(1.0);
    if cfg.beta != 0.0 {
        let Some(reference) = ref_logp else {
            candle_core::bail!("β = {} needs the reference policy's log-probs", cfg.beta);
        };
        let d = (reference - logp)?;
        let k3 = ((d.exp()? - &d)? - 1.0)?;
        kl_mean = masked_sum(&k3.detach(), mask)? / n_tokens;
        per_token = (per_token + (k3 * cfg.beta as f64)?)?;
    }
    let weighted = (per_token * mask)?;
    let loss = match cfg.normalisation {
        Normalisation::TokenMean => (weighted.sum_all()? / n_tokens)?,
        Normalisation::SequenceMean => {
            let per_seq = mask.sum(D::Minus1)?.clamp(1.0, f64::INFINITY)?;
            (weighted.sum(D::Minus1)? / per_seq)?.mean_all()?
        }
        Normalisation::Constant(l) => {
            let b = mask.dim(0)? as f64;
            (weighted.sum_all()? / (b * l as f64))?
        }
    };
    let binds = surr2.lt(&surr1)?.to_dtype(mask.dtype())?;
    let stats = LossStats {
        clip_fraction: (masked_sum(&binds, mask)? / n_tokens) as f32,
        kl: kl_mean as f32,
        ratio: (masked_sum(&ratio.detach(), mask)? / n_tokens) as f32,
    };
    Ok((loss, stats))
}

fn masked_sum(x: &Tensor, mask: &Tensor) -> Result<f64> {
    (x * mask)?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()
}

#[cfg(test)]
#[path = "loss_tests.rs"]
mod tests;
