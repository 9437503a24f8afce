//! A small decoder-only transformer for training from scratch: learned token and position
//! embeddings, pre-norm blocks `x += Attn(RMSNorm(x)); x += MLP(RMSNorm(x))` with causal
//! multi-head attention and a GELU MLP, a final RMSNorm and an output layer tied to the token
//! embedding. Every op is differentiable (candle autograd): the fused inference kernels
//! (`rms_norm`, `softmax_last_dim`) have no backward pass, so the plain-op forms are used.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder, VarMap};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TinyConfig {
    pub vocab: usize,
    pub layers: usize,
    pub width: usize,
    pub heads: usize,
    /// Longest sequence (positions are learned).
    pub context: usize,
}

impl TinyConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.heads == 0 || self.width % self.heads != 0 {
            return Err(format!("width ({}) must be a multiple of heads ({})", self.width, self.heads));
        }
        if self.layers == 0 || self.vocab == 0 || self.context == 0 {
            return Err("layers, vocab and context must be at least 1".into());
        }
        Ok(())
    }

    pub fn parameters(&self) -> usize {
        // Per block: two norms (2w), qkv (3w² + 3w), out (w² + w), up (4w² + 4w), down (4w² + w).
        let (w, l) = (self.width, self.layers);
        self.vocab * w + self.context * w + l * (12 * w * w + 11 * w) + w
    }
}

struct Block {
    attn_norm: Tensor,
    qkv: candle_nn::Linear,
    out: candle_nn::Linear,
    mlp_norm: Tensor,
    up: candle_nn::Linear,
    down: candle_nn::Linear,
}

pub struct TinyLm {
    pub cfg: TinyConfig,
    embed: Tensor,
    positions: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
}

const EPS: f64 = 1e-5;

fn rms_norm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + EPS)?.sqrt()?)?.broadcast_mul(w)
}

fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

impl TinyLm {
    /// A freshly initialised model whose weights live in `vars` (for the optimizer and for
    /// saving). Initialisation: N(0, 0.02) for embeddings and projections, the output
    /// projections of each block scaled by `1/√(2·layers)` (GPT-2).
    pub fn new(cfg: TinyConfig, vars: &VarMap, device: &Device) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let vb = VarBuilder::from_varmap(vars, DType::F32, device);
        let normal = Init::Randn { mean: 0.0, stdev: 0.02 };
        let resid = Init::Randn { mean: 0.0, stdev: 0.02 / (2.0 * cfg.layers as f64).sqrt() };
        let w = cfg.width;
        let linear = |vb: VarBuilder, i: usize, o: usize, init: Init| -> Result<candle_nn::Linear> {
            let weight = vb.get_with_hints((o, i), "weight", init)?;
            let bias = vb.get_with_hints(o, "bias", Init::Const(0.0))?;
            Ok(candle_nn::Linear::new(weight, Some(bias)))
        };
        let blocks = (0..cfg.layers)
            .map(|l| {
                let vb = vb.pp(format!("blocks.{l}"));
                Ok(Block {
                    attn_norm: vb.get_with_hints(w, "attn_norm", Init::Const(1.0))?,
                    qkv: linear(vb.pp("qkv"), w, 3 * w, normal)?,
                    out: linear(vb.pp("out"), w, w, resid)?,
                    mlp_norm: vb.get_with_hints(w, "mlp_norm", Init::Const(1.0))?,
                    up: linear(vb.pp("up"), w, 4 * w, normal)?,
                    down: linear(vb.pp("down"), 4 * w, w, resid)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TinyLm {
            cfg,
            embed: vb.get_with_hints((cfg.vocab, w), "embed", normal)?,
            positions: vb.get_with_hints((cfg.context, w), "positions", normal)?,
            blocks,
            norm: vb.get_with_hints(w, "norm", Init::Const(1.0))?,
        })
    }

    /// Logits `[B, T, vocab]` for ids `[B, T]` (`T ≤ context`).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.cfg.context {
            candle_core::bail!("sequence of {t} tokens exceeds the context of {}", self.cfg.context);
        }
        let (w, h) = (self.cfg.width, self.cfg.heads);
        let hd = w / h;
        let mut x = self.embed.embedding(&ids.flatten_all()?)?.reshape((b, t, w))?;
        x = x.broadcast_add(&self.positions.narrow(0, 0, t)?)?;
        let mask: Vec<f32> =
            (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
        let mask = Tensor::from_vec(mask, (t, t), ids.device())?;
        let scale = 1.0 / (hd as f64).sqrt();
        for blk in &self.blocks {
            let qkv = blk.qkv.forward(&rms_norm(&x, &blk.attn_norm)?)?.reshape((b, t, 3, h, hd))?;
            let q = qkv.narrow(2, 0, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
            let k = qkv.narrow(2, 1, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
            let v = qkv.narrow(2, 2, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let y = softmax_last(&scores)?.matmul(&v)?.transpose(1, 2)?.reshape((b, t, w))?;
            x = (x + blk.out.forward(&y)?)?;
            let m = blk.down.forward(&blk.up.forward(&rms_norm(&x, &blk.mlp_norm)?)?.gelu()?)?;
            x = (x + m)?;
        }
        rms_norm(&x, &self.norm)?.broadcast_matmul(&self.embed.t()?)
    }

    /// Teacher-forced log-probs `[B, T − 1]`: entry t is `log π(ids[t+1] | ids[..=t])` at
    /// temperature `T` (`log softmax(logits / T)`), with gradients.
    pub fn token_logprobs(&self, ids: &Tensor, temperature: f32) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let logits = self.forward(&ids.narrow(1, 0, t - 1)?)?;
        let logits = if temperature > 0.0 && temperature != 1.0 { (logits / temperature as f64)? } else { logits };
        let lp = log_softmax(&logits)?;
        lp.gather(&ids.narrow(1, 1, t - 1)?.contiguous()?.unsqueeze(2)?, 2)?.squeeze(2)
    }
}

/// `log softmax` over the last axis, differentiable.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

#[cfg(test)]
#[path = "tiny_tests.rs"]
mod tests;
