//! Token batches for training: trajectories of different lengths padded into `[B, T]` tensors,
//! with the loss mask shifted to the positions that predict each token.

use candle_core::{Device, Result, Tensor};

/// Padded token ids and the masks and weights of the predicted positions.
pub struct TokenBatch {
    /// `[B, T]` ids, right-padded with `pad`.
    pub ids: Tensor,
    /// `[B, T − 1]`: entry t is 1 when token t + 1 was written by the policy (what the loss
    /// trains on), 0 for prompt, observation and padding tokens.
    pub mask: Tensor,
    /// `[B, T − 1]` per-token values aligned with `mask` (advantages, sampling log-probs).
    pub values: Vec<Tensor>,
    /// How many leading tokens every row shares and none of them was trained on (the env's
    /// prompt): the model can run them once for the whole batch
    /// (`TinyLm::token_logprobs_shared`).
    pub shared: usize,
    /// Row b's pictures in the order of its placeholder runs (a vision policy; empty: text).
    pub pictures: Vec<Vec<String>>,
}

impl TokenBatch {
    /// `seqs[i] = (ids, loss_mask)` of one trajectory; `values[k][i]` is a per-token series of
    /// the same length as `ids` (e.g. the advantage broadcast over the trajectory's tokens),
    /// shifted like the mask.
    pub fn new(seqs: &[(&[u32], &[u8])], values: &[Vec<Vec<f32>>], pad: u32, device: &Device) -> Result<Self> {
        let b = seqs.len();
        let t = seqs.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0).max(2);
        let mut ids = vec![pad; b * t];
        let mut mask = vec![0f32; b * (t - 1)];
        for (i, (s, m)) in seqs.iter().enumerate() {
            if s.len() != m.len() {
                candle_core::bail!("sequence {i}: {} ids but {} mask entries", s.len(), m.len());
            }
            ids[i * t..i * t + s.len()].copy_from_slice(s);
            for j in 1..s.len() {
                mask[i * (t - 1) + j - 1] = f32::from(m[j]);
            }
        }
        let shifted = |series: &Vec<Vec<f32>>| -> Result<Tensor> {
            let mut v = vec![0f32; b * (t - 1)];
            for (i, s) in series.iter().enumerate().take(b) {
                for j in 1..s.len().min(t) {
                    v[i * (t - 1) + j - 1] = s[j];
                }
            }
            Tensor::from_vec(v, (b, t - 1), device)
        };
        let first_written = seqs.iter().map(|(_, m)| m.iter().position(|&x| x == 1).unwrap_or(m.len())).min();
        let common = seqs.first().map_or(0, |(first, _)| {
            (0..first.len()).take_while(|&j| seqs.iter().all(|(s, _)| s.get(j) == Some(&first[j]))).count()
        });
        Ok(TokenBatch {
            shared: common.min(first_written.unwrap_or(0)),
            ids: Tensor::from_vec(ids, (b, t), device)?,
            mask: Tensor::from_vec(mask, (b, t - 1), device)?,
            values: values.iter().map(shifted).collect::<Result<Vec<_>>>()?,
            pictures: Vec::new(),
        })
    }

    /// The batch with row b showing `pictures[b]` (each trajectory's `token_pictures`).
    pub fn showing(self, pictures: Vec<Vec<String>>) -> Self {
        TokenBatch { pictures, ..self }
    }
}

/// Supervised fine-tuning loss: masked next-token cross-entropy
/// `L = −Σ_{b,t} m_{b,t} · log π(y_{b,t+1} | y_{b,≤t}) / Σ_{b,t} m_{b,t}`
/// over the policy-written tokens of demonstrations (`logp`, `mask`: `[B, T − 1]`).
pub fn sft_loss(logp: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let n = mask.sum_all()?.to_scalar::<f32>()?.max(1.0) as f64;
    (logp * mask)?.sum_all()?.neg()? / n
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
