//! A BERT encoder (the architecture of all-MiniLM-L6-v2) over safetensors weights.
//!
//! `h = LN(word[id] + pos[i] + type[0])`, then per layer
//! `h = LN(h + W_o · Attn(h)); h = LN(h + W_2 · gelu(W_1 · h))` (post-norm), with a key mask
//! so that padding never changes a sentence's result.

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-12
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
    ff_norm: LayerNorm,
}

pub struct Bert {
    pub cfg: BertConfig,
    word: Embedding,
    pos: Embedding,
    token_type: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    pub fn load(vb: VarBuilder, cfg: BertConfig) -> candle_core::Result<Self> {
        let h = cfg.hidden_size;
        let ln = |vb: VarBuilder| candle_nn::layer_norm(h, cfg.layer_norm_eps, vb);
        let e = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                Ok(Layer {
                    q: candle_nn::linear(h, h, l.pp("attention.self.query"))?,
                    k: candle_nn::linear(h, h, l.pp("attention.self.key"))?,
                    v: candle_nn::linear(h, h, l.pp("attention.self.value"))?,
                    attn_out: candle_nn::linear(h, h, l.pp("attention.output.dense"))?,
                    attn_norm: ln(l.pp("attention.output.LayerNorm"))?,
                    ff_in: candle_nn::linear(h, cfg.intermediate_size, l.pp("intermediate.dense"))?,
                    ff_out: candle_nn::linear(cfg.intermediate_size, h, l.pp("output.dense"))?,
                    ff_norm: ln(l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Bert {
            word: candle_nn::embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?,
            pos: candle_nn::embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?,
            token_type: e.pp("token_type_embeddings").get((2, h), "weight")?.narrow(0, 0, 1)?,
            emb_norm: ln(e.pp("LayerNorm"))?,
            layers,
            cfg,
        })
    }

    /// Token states `[b, s, hidden]` for ids `[b, s]`; `mask` `[b, s]` is 1 on real tokens.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let dev = ids.device();
        let positions = Tensor::arange(0u32, s as u32, dev)?.unsqueeze(0)?;
        let x =
            self.word.forward(ids)?.broadcast_add(&self.pos.forward(&positions)?)?.broadcast_add(&self.token_type)?;
        let mut x = self.emb_norm.forward(&x)?;
        // Additive key mask [b, 1, 1, s]: 0 for real tokens, −1e4 for padding (as BERT does).
        let key_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 10_000.0)?.reshape((b, 1, 1, s))?;
        let nh = self.cfg.num_attention_heads;
        let hd = self.cfg.hidden_size / nh;
        let heads = |t: Tensor| t.reshape((b, s, nh, hd))?.transpose(1, 2)?.contiguous();
        for l in &self.layers {
            let q = heads(l.q.forward(&x)?)?;
            let k = heads(l.k.forward(&x)?)?;
            let v = heads(l.v.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(&key_bias)?;
            let att = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?;
            let att = att.transpose(1, 2)?.reshape((b, s, self.cfg.hidden_size))?;
            x = l.attn_norm.forward(&(l.attn_out.forward(&att)? + &x)?)?;
            let ff = l.ff_out.forward(&l.ff_in.forward(&x)?.gelu_erf()?)?;
            x = l.ff_norm.forward(&(ff + &x)?)?;
        }
        Ok(x)
    }
}

/// Mean of the token states over real tokens, then L2-normalised: `e = v / ‖v‖`,
/// `v = Σ_i m_i h_i / Σ_i m_i`.
pub fn mean_pool_normalize(states: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let m = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
    let summed = states.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}

pub(crate) fn cpu() -> Device {
    Device::Cpu
}
