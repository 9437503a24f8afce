//! A small llama-architecture decoder for training from scratch: RMSNorm pre-norm blocks,
//! multi-head attention with interleaved rotary embeddings (as `Arch::Llama` runs them), a
//! SwiGLU MLP `down(silu(gate(x)) · up(x))`, no biases, the output layer tied to the token
//! embedding. Tensors carry GGUF names, so `write_gguf` hands a trained model to
//! `LocalLlm::load` unchanged and `load_gguf` resumes from one.
//!
//! Every op is differentiable (candle autograd): the fused inference kernels (`rms_norm`,
//! `softmax_last_dim`, `rope_i`) have no backward pass, so their plain-op forms are used
//! (`rms_norm_slow`, `softmax`, `log_softmax`, and `rope_i` below).

use crate::chat_template::CHATML;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TinyConfig {
    pub vocab: usize,
    pub layers: usize,
    pub width: usize,
    pub heads: usize,
    /// Hidden size of the SwiGLU MLP.
    pub ffn: usize,
    /// Longest sequence.
    pub context: usize,
}

impl TinyConfig {
    /// A config over the byte vocabulary (`byte_vocab`).
    pub fn bytes(layers: usize, width: usize, heads: usize, context: usize) -> Self {
        TinyConfig { vocab: byte_vocab().0.len(), layers, width, heads, ffn: 4 * width, context }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.heads == 0 || self.width % self.heads != 0 || (self.width / self.heads) % 2 != 0 {
            return Err(format!("width ({}) must be an even multiple of heads ({})", self.width, self.heads));
        }
        if self.layers == 0 || self.vocab == 0 || self.context == 0 || self.ffn == 0 {
            return Err("layers, vocab, ffn and context must be at least 1".into());
        }
        Ok(())
    }

    pub fn parameters(&self) -> usize {
        // Per block: two norms (2w), q, k, v, out (4w²), gate, up, down (3·w·ffn).
        let (w, l) = (self.width, self.layers);
        self.vocab * w + l * (2 * w + 4 * w * w + 3 * w * self.ffn) + w
    }
}

/// The byte-level vocabulary as a SentencePiece vocabulary of pure byte fallback: control
/// tokens for ChatML, `▁` (a space), and the 256 byte tokens `<0xXX>`. Returns (pieces,
/// scores, token types). Any text encodes losslessly.
pub fn byte_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut pieces: Vec<String> =
        ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "\u{2581}"].iter().map(|s| s.to_string()).collect();
    let mut types = vec![2, 3, 3, 3, 1];
    for b in 0..=255u8 {
        pieces.push(format!("<0x{b:02X}>"));
        types.push(6);
    }
    let scores = vec![0.0; pieces.len()];
    (pieces, scores, types)
}

const EPS: f64 = 1e-5;
const ROPE_BASE: f32 = 10_000.0;

pub struct TinyLm {
    pub cfg: TinyConfig,
    vars: VarMap,
    cos: Tensor,
    sin: Tensor,
}

/// RMSNorm in plain ops (differentiable, unlike the fused `candle_nn::ops::rms_norm`).
fn rms_norm(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    candle_nn::ops::rms_norm_slow(x, w, EPS as f32)
}

/// Interleaved RoPE on `[B, H, T, D]`: each pair `(x_2i, x_2i+1)` at position p is rotated by
/// `p · θ_i`, `θ_i = base^(−2i/D)`.
fn rope_i(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    let pairs = x.reshape((b, h, t, d / 2, 2))?;
    let (x0, x1) = (pairs.narrow(4, 0, 1)?, pairs.narrow(4, 1, 1)?);
    let cos = cos.narrow(0, 0, t)?.reshape((1, 1, t, d / 2, 1))?;
    let sin = sin.narrow(0, 0, t)?.reshape((1, 1, t, d / 2, 1))?;
    let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
    let r1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
    Tensor::cat(&[r0, r1], 4)?.reshape((b, h, t, d))
}

impl TinyLm {
    /// A freshly initialised model, the same for the same `seed`: N(0, 0.02) for embeddings
    /// and projections, output projections scaled by `1/√(2·layers)` (GPT-2), norms at 1.
    pub fn new(cfg: TinyConfig, device: &Device, seed: u64) -> Result<Self> {
        use rand::{Rng, SeedableRng};
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let vars = VarMap::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (w, f) = (cfg.width, cfg.ffn);
        let resid = 0.02 / (2.0 * cfg.layers as f32).sqrt();
        let mut specs: Vec<(String, Vec<usize>, Option<f32>)> = vec![
            ("token_embd.weight".into(), vec![cfg.vocab, w], Some(0.02)),
            ("output_norm.weight".into(), vec![w], None),
        ];
        for l in 0..cfg.layers {
            let p = |n: &str| format!("blk.{l}.{n}.weight");
            specs.push((p("attn_norm"), vec![w], None));
            for n in ["attn_q", "attn_k", "attn_v"] {
                specs.push((p(n), vec![w, w], Some(0.02)));
            }
            specs.push((p("attn_output"), vec![w, w], Some(resid)));
            specs.push((p("ffn_norm"), vec![w], None));
            specs.push((p("ffn_gate"), vec![f, w], Some(0.02)));
            specs.push((p("ffn_up"), vec![f, w], Some(0.02)));
            specs.push((p("ffn_down"), vec![w, f], Some(resid)));
        }
        {
            let mut data = vars.data().lock().map_err(|_| candle_core::Error::Msg("variables poisoned".into()))?;
            for (name, shape, std) in specs {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = match std {
                    // Box–Muller from the seeded generator (candle's CPU generator cannot be seeded).
                    Some(s) => (0..n)
                        .map(|_| {
                            let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-12), rng.random());
                            s * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                        })
                        .collect(),
                    None => vec![1.0; n],
                };
                data.insert(name, candle_core::Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?);
            }
        }
        let hd = w / cfg.heads;
        let inv: Vec<f32> = (0..hd / 2).map(|i| 1.0 / ROPE_BASE.powf(2.0 * i as f32 / hd as f32)).collect();
        let pos = Tensor::arange(0u32, cfg.context as u32, device)?.to_dtype(DType::F32)?.unsqueeze(1)?;
        let angles = pos.broadcast_mul(&Tensor::from_vec(inv, (1, hd / 2), device)?)?;
        Ok(TinyLm { cfg, vars, cos: angles.cos()?, sin: angles.sin()? })
    }

    /// The trainable variables (for the optimizer).
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    fn get(&self, name: &str) -> Result<Tensor> {
        let data = self.vars.data().lock().map_err(|_| candle_core::Error::Msg("variables poisoned".into()))?;
        data.get(name).map(|v| v.as_tensor().clone()).ok_or_else(|| candle_core::Error::Msg(format!("no {name}")))
    }

    /// Logits `[B, T, vocab]` for ids `[B, T]` (`T ≤ context`).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (x, _) = self.blocks(ids, None)?;
        self.logits(&x)
    }

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.get("output_norm.weight")?)?.broadcast_matmul(&self.get("token_embd.weight")?.t()?)
    }

    /// The blocks over ids `[B, T]` placed after `prefix` (whose per-layer keys and values
    /// `[1, H, P, hd]` every row attends to). Returns the last hidden states `[B, T, w]` and
    /// this call's own keys and values per layer.
    fn blocks(&self, ids: &Tensor, prefix: Option<&[(Tensor, Tensor)]>) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        let (b, t) = ids.dims2()?;
        let p = prefix.and_then(|kv| kv.first()).map(|(k, _)| k.dim(2)).transpose()?.unwrap_or(0);
        if p + t > self.cfg.context {
            candle_core::bail!("sequence of {} tokens exceeds the context of {}", p + t, self.cfg.context);
        }
        let (w, h) = (self.cfg.width, self.cfg.heads);
        let hd = w / h;
        let mut x = self.get("token_embd.weight")?.embedding(&ids.flatten_all()?)?.reshape((b, t, w))?;
        // Row i (position p + i) sees the whole prefix and the rows up to itself.
        let mask: Vec<f32> =
            (0..t).flat_map(|i| (0..p + t).map(move |j| if j <= p + i { 0.0 } else { f32::NEG_INFINITY })).collect();
        let mask = Tensor::from_vec(mask, (t, p + t), ids.device())?;
        let (cos, sin) = (self.cos.narrow(0, p, t)?, self.sin.narrow(0, p, t)?);
        let scale = 1.0 / (hd as f64).sqrt();
        let heads = |y: Tensor| y.reshape((b, t, h, hd))?.transpose(1, 2)?.contiguous();
        let mut own = Vec::with_capacity(self.cfg.layers);
        for l in 0..self.cfg.layers {
            let w_ = |n: &str| self.get(&format!("blk.{l}.{n}.weight"));
            let xn = rms_norm(&x, &w_("attn_norm")?)?;
            let q = rope_i(&heads(xn.broadcast_matmul(&w_("attn_q")?.t()?)?)?, &cos, &sin)?;
            let k = rope_i(&heads(xn.broadcast_matmul(&w_("attn_k")?.t()?)?)?, &cos, &sin)?;
            let v = heads(xn.broadcast_matmul(&w_("attn_v")?.t()?)?)?;
            let (ka, va) = match prefix {
                Some(kv) => {
                    let (kp, vp) = &kv[l];
                    let wide = |x: &Tensor| x.broadcast_as((b, h, p, hd))?.contiguous();
                    (Tensor::cat(&[&wide(kp)?, &k], 2)?, Tensor::cat(&[&wide(vp)?, &v], 2)?)
                }
                None => (k.clone(), v.clone()),
            };
            let y = attention(&q, &ka, &va, &mask, scale)?.transpose(1, 2)?.reshape((b, t, w))?;
            own.push((k, v));
            x = (x + y.broadcast_matmul(&w_("attn_output")?.t()?)?)?;
            let xn = rms_norm(&x, &w_("ffn_norm")?)?;
            let gate = candle_nn::ops::silu(&xn.broadcast_matmul(&w_("ffn_gate")?.t()?)?)?;
            let up = xn.broadcast_matmul(&w_("ffn_up")?.t()?)?;
            x = (x + (gate * up)?.broadcast_matmul(&w_("ffn_down")?.t()?)?)?;
        }
        Ok((x, own))
    }

    /// Teacher-forced log-probs `[B, T − 1]`: entry t is `log π(ids[t+1] | ids[..=t])` at
    /// temperature `T` (`log softmax(logits / T)`), with gradients.
    pub fn token_logprobs(&self, ids: &Tensor, temperature: f32) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        let logits = self.forward(&ids.narrow(1, 0, t - 1)?)?;
        gather_logprobs(&logits, &ids.narrow(1, 1, t - 1)?, temperature)
    }

    /// `token_logprobs` for rows that all begin with the same `shared` tokens (the env's
    /// prompt): the shared part runs once, as one row, and every row attends to its keys and
    /// values — the same numbers for far less work when the prompt dominates the sequence.
    /// Entries `t < shared − 1` (tokens inside the shared part) are not computed and are 0:
    /// callers mask them (prompt tokens are never trained on).
    pub fn token_logprobs_shared(&self, ids: &Tensor, shared: usize, temperature: f32) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if shared < 2 || shared >= t {
            return self.token_logprobs(ids, temperature);
        }
        let (xp, kv) = self.blocks(&ids.narrow(0, 0, 1)?.narrow(1, 0, shared)?, None)?;
        // Logits at shared−1 … t−2 predict tokens shared … t−1.
        let last = self.logits(&xp.narrow(1, shared - 1, 1)?)?.broadcast_as((b, 1, self.cfg.vocab))?;
        let rest = ids.narrow(1, shared, t - shared)?;
        let (xs, _) = self.blocks(&rest.narrow(1, 0, t - shared - 1)?, Some(&kv))?;
        let logits = Tensor::cat(&[&last, &self.logits(&xs)?], 1)?;
        let lp = gather_logprobs(&logits, &rest, temperature)?;
        let skipped = Tensor::zeros((b, shared - 1), lp.dtype(), lp.device())?;
        Tensor::cat(&[&skipped, &lp], 1)
    }

    /// Writes the model as a GGUF file (llama architecture, f32 tensors, the byte vocabulary
    /// and ChatML template), atomically: a crash leaves the old file or the new one.
    pub fn write_gguf(&self, path: &Path) -> anyhow::Result<()> {
        let c = &self.cfg;
        let u = |x: usize| Value::U32(x as u32);
        let (pieces, scores, types) = byte_vocab();
        let meta: Vec<(&str, Value)> = vec![
            ("general.architecture", Value::String("llama".into())),
            ("general.name", Value::String("kaizen-tiny".into())),
            ("llama.block_count", u(c.layers)),
            ("llama.context_length", u(c.context)),
            ("llama.embedding_length", u(c.width)),
            ("llama.feed_forward_length", u(c.ffn)),
            ("llama.attention.head_count", u(c.heads)),
            ("llama.attention.head_count_kv", u(c.heads)),
            ("llama.rope.dimension_count", u(c.width / c.heads)),
            ("llama.rope.freq_base", Value::F32(ROPE_BASE)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(EPS as f32)),
            ("llama.vocab_size", u(c.vocab)),
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.pre", Value::String("default".into())),
            ("tokenizer.ggml.tokens", Value::Array(pieces.into_iter().map(Value::String).collect())),
            ("tokenizer.ggml.scores", Value::Array(scores.into_iter().map(Value::F32).collect())),
            ("tokenizer.ggml.token_type", Value::Array(types.into_iter().map(Value::I32).collect())),
            ("tokenizer.ggml.unknown_token_id", Value::U32(0)),
            ("tokenizer.ggml.eos_token_id", Value::U32(3)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
            ("tokenizer.ggml.add_space_prefix", Value::Bool(false)),
            ("tokenizer.chat_template", Value::String(CHATML.into())),
        ];
        let mut names: Vec<String> =
            self.vars.data().lock().map_err(|_| anyhow::anyhow!("poisoned"))?.keys().cloned().collect();
        names.sort();
        let tensors = names
            .iter()
            .map(|n| Ok((n.as_str(), QTensor::quantize(&self.get(n)?, GgmlDType::F32)?)))
            .collect::<Result<Vec<_>>>()?;
        let tmp = path.with_extension("gguf.tmp");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let m: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
            let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (*n, q)).collect();
            gguf_file::write(&mut f, &m, &t)?;
            std::io::Write::flush(&mut f)?;
            f.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// A model with the weights of a GGUF file written by `write_gguf`.
    pub fn load_gguf(path: &Path, device: &Device) -> anyhow::Result<Self> {
        let g = crate::gguf::GgufFile::open(path)?;
        let lc = crate::llama::LlamaConfig::from_gguf(&g)?;
        let ffn = g.get_u32("llama.feed_forward_length")? as usize;
        let cfg = TinyConfig {
            vocab: lc.vocab_size,
            layers: lc.n_layer,
            width: lc.hidden,
            heads: lc.n_head,
            ffn,
            context: lc.context_len,
        };
        let model = TinyLm::new(cfg, device, 0)?;
        {
            let data = model.vars.data().lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            for (name, var) in data.iter() {
                let t = g.tensor(name, device)?.dequantize(device)?;
                anyhow::ensure!(t.shape() == var.shape(), "{name}: shape {:?}, expected {:?}", t.shape(), var.shape());
                var.set(&t)?;
            }
        }
        Ok(model)
    }
}

/// Causal attention `softmax(q kᵀ · scale + mask) v` on `[B, H, T, D]`, in slices of batch
/// rows and heads whose `T × T` score matrices stay under ~16 MB: a long sequence's full
/// `B·H·T²` scores (and their gradients) would be hundreds of MB each, allocated fresh by the
/// kernel every step.
fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, h, t, _) = q.dims4()?;
    let per_head = t * k.dim(2)?;
    let heads_per_slice = ((4 << 20) / per_head.max(1)).clamp(1, h);
    if heads_per_slice >= h && b * h * per_head <= 4 << 20 {
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
        return candle_nn::ops::softmax(&scores, D::Minus1)?.matmul(v);
    }
    let mut rows = Vec::with_capacity(b);
    for bi in 0..b {
        let mut parts = Vec::new();
        for h0 in (0..h).step_by(heads_per_slice) {
            let n = heads_per_slice.min(h - h0);
            let slice = |x: &Tensor| x.narrow(0, bi, 1)?.narrow(1, h0, n);
            let scores = (slice(q)?.matmul(&slice(k)?.t()?)? * scale)?.broadcast_add(mask)?;
            parts.push(candle_nn::ops::softmax(&scores, D::Minus1)?.matmul(&slice(v)?)?);
        }
        rows.push(Tensor::cat(&parts, 1)?);
    }
    Tensor::cat(&rows, 0)
}

/// `log softmax(logits / T)` at each target id: `[B, S, V]`, `[B, S]` → `[B, S]`.
fn gather_logprobs(logits: &Tensor, targets: &Tensor, temperature: f32) -> Result<Tensor> {
    let logits = if temperature > 0.0 && temperature != 1.0 { (logits / temperature as f64)? } else { logits.clone() };
    candle_nn::ops::log_softmax(&logits, D::Minus1)?.gather(&targets.contiguous()?.unsqueeze(2)?, 2)?.squeeze(2)
}

#[cfg(test)]
#[path = "tiny_tests.rs"]
mod tests;
