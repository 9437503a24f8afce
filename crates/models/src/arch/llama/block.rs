//! One transformer block of the llama family, in the parts candle's own models have: the
//! attention (`Attention`: q/k/v, optional q/k norms, RoPE, the KV cache, grouped-query
//! attention), the MLP (`Mlp`: gated SiLU, or GELU for Gemma), and the block around them
//! (`Block`: pre-norms, Gemma's post-norms, the residual adds). Each has its own `forward`.

use super::{Arch, KvCache, Linear, LlamaConfig, RmsNorm, StackedLinear};
use crate::kernels::attention::{DecodeAttention, KeySpan};
use candle_core::Tensor;

pub(super) struct Attention {
    /// q, k, v
    pub(super) qkv: StackedLinear,
    pub(super) o: Linear,
    pub(super) q_norm: Option<RmsNorm>,
    pub(super) k_norm: Option<RmsNorm>,
}

pub(super) struct Mlp {
    /// gate, up
    pub(super) gate_up: StackedLinear,
    pub(super) down: Linear,
    /// Gemma's GELU instead of SiLU on the gate.
    pub(super) gelu: bool,
}

pub(super) struct Block {
    pub(super) attn_norm: RmsNorm,
    pub(super) attn: Attention,
    pub(super) mlp_norm: RmsNorm,
    pub(super) mlp: Mlp,
    /// Gemma: norms on the attention and MLP outputs before the residual add.
    pub(super) post_attn_norm: Option<RmsNorm>,
    pub(super) post_mlp_norm: Option<RmsNorm>,
}

/// Where a block's attention looks: the RoPE angles of this call's positions, the causal mask
/// (several tokens per row), and a sliding window's length (Gemma's local layers).
pub(super) struct Positions<'a> {
    pub(super) cos: &'a Tensor,
    pub(super) sin: &'a Tensor,
    pub(super) mask: Option<&'a Tensor>,
    pub(super) window: Option<usize>,
}

impl Block {
    /// `x + attn(norm(x))`, then `+ mlp(norm(·))`, with Gemma's post-norms; writes this
    /// layer's keys and values of `rows` into `cache`.
    pub(super) fn forward(
        &self,
        cfg: &LlamaConfig,
        x: Tensor,
        at: &Positions,
        cache: &mut KvCache,
        rows: &[usize],
        layer: usize,
    ) -> candle_core::Result<Tensor> {
        let h = self.attn_norm.forward(&x)?;
        let mut att = self.attn.forward(cfg, &h, at, cache, rows, layer)?;
        if let Some(n) = &self.post_attn_norm {
            att = n.forward(&att)?;
        }
        let x = (x + att)?;
        let h = self.mlp_norm.forward(&x)?;
        let mut mlp = self.mlp.forward(&h)?;
        if let Some(n) = &self.post_mlp_norm {
            mlp = n.forward(&mlp)?;
        }
        x + mlp
    }
}

impl Mlp {
    /// `down(act(gate(x)) · up(x))`.
    pub(super) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let gu = self.gate_up.forward(x)?;
        let act = if self.gelu { gu[0].gelu()? } else { candle_nn::ops::silu(&gu[0])? };
        self.down.forward(&(act * &gu[1])?)
    }
}

impl Attention {
    /// Attention of `x` (`[b, s, hidden]`, rows `rows` of `cache`) over each row's cached keys
    /// and these: one token per row through the decode kernel, each row at its own position;
    /// several tokens per row (rows at one position) as grouped-query attention with `at.mask`.
    pub(super) fn forward(
        &self,
        cfg: &LlamaConfig,
        x: &Tensor,
        at: &Positions,
        cache: &mut KvCache,
        rows: &[usize],
        layer: usize,
    ) -> candle_core::Result<Tensor> {
        let (b, s, _) = x.dims3()?;
        let (nh, nkv, hd) = (cfg.n_head, cfg.n_kv_head, cfg.head_dim);
        let (cos, sin) = (at.cos, at.sin);
        let qkv = self.qkv.forward(x)?;
        let q = qkv[0].contiguous()?.reshape((b, s, nh, hd))?.transpose(1, 2)?;
        let k = qkv[1].contiguous()?.reshape((b, s, nkv, hd))?.transpose(1, 2)?;
        let v = qkv[2].contiguous()?.reshape((b, s, nkv, hd))?.transpose(1, 2)?.contiguous()?;
        let (q, k) = match (&self.q_norm, &self.k_norm) {
            (Some(qn), Some(kn)) => (qn.forward(&q)?, kn.forward(&k)?),
            _ => (q, k),
        };
        let (q, k) = match cfg.arch {
            Arch::Llama => (
                candle_nn::rotary_emb::rope_i(&q.contiguous()?, cos, sin)?,
                candle_nn::rotary_emb::rope_i(&k.contiguous()?, cos, sin)?,
            ),
            Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma3 => (
                candle_nn::rotary_emb::rope(&q.contiguous()?, cos, sin)?,
                candle_nn::rotary_emb::rope(&k.contiguous()?, cos, sin)?,
            ),
        };
        let (kbuf, vbuf) = cache.write(layer, &k, &v, rows)?;
        if s == 1 {
            // Each row attends to its own positions; a sliding-window layer only to the last
            // `window` of them.
            let spans = rows
                .iter()
                .map(|&r| {
                    let end = cache.lens[r] + 1;
                    KeySpan { row: r, start: at.window.map_or(0, |w| end.saturating_sub(w)), end }
                })
                .collect();
            let y = q.apply_op3_no_bwd(&kbuf, &vbuf, &DecodeAttention { scale: cfg.attn_scale, spans })?;
            return self.o.forward(&y.reshape((b, 1, nh * hd))?);
        }
        // Several tokens per row: the rows share one position (checked by the caller).
        let t = cache.lens[rows[0]] + s;
        let contiguous = rows.windows(2).all(|w| w[1] == w[0] + 1);
        let pick = |buf: &Tensor| -> candle_core::Result<Tensor> {
            let buf = if contiguous {
                buf.narrow(0, rows[0], b)?
            } else {
                let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
                buf.index_select(&Tensor::new(idx.as_slice(), buf.device())?, 0)?
            };
            buf.narrow(2, 0, t)
        };
        let (k, v) = (pick(&kbuf)?, pick(&vbuf)?);
        // Grouped-query attention without copying K/V: the `rep` query heads that share a kv
        // head are stacked along the sequence axis, `[b, nkv, rep * s, hd]`.
        let rep = nh / nkv;
        let q = q.reshape((b, nkv, rep * s, hd))?;
        let mut scores = (q.matmul(&k.t()?)? * cfg.attn_scale as f64)?;
        if let Some(m) = at.mask {
            let m = if rep > 1 { m.repeat((rep, 1))? } else { m.clone() };
            scores = scores.broadcast_add(&m)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        debug_assert_eq!(probs.dim(3)?, t);
        let y = probs.matmul(&v)?.reshape((b, nh, s, hd))?.transpose(1, 2)?.reshape((b, s, nh * hd))?;
        self.o.forward(&y)
    }
}
