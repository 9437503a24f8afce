//! A llama-architecture decoder with gradients: RMSNorm pre-norm blocks, grouped-query
//! attention with interleaved rotary embeddings (as `Arch::Llama` runs GGUF weights), a SwiGLU
//! MLP `down(silu(gate(x)) · up(x))`, no biases, the output layer tied to the token embedding
//! unless the file has its own; optionally previous-token embeddings at the input
//! (`LmConfig::prev_token`). Two kinds of training run on it:
//!
//! - **from scratch** (`TrainableLm::new`): every weight trains; the `tiny` policy on a
//!   byte-level vocabulary;
//! - **LoRA** (`TrainableLm::with_lora`): a pretrained GGUF model (SmolLM2) is dequantised and
//!   frozen, and only low-rank adapters on the chosen projections train (`lora.rs`).
//!
//! Tensors carry GGUF names, so `write_gguf` hands the model (adapters merged) to
//! `LocalLlm::load` unchanged: episodes, batching, scoring and serving run it like any model.
//!
//! Every op is differentiable (candle autograd). The projections, attention, RMSNorm, RoPE,
//! the SwiGLU gate and the target log-probs are kaizen's fused training kernels with their own
//! backward passes (`linear.rs`, `causal_attention.rs`, `row_ops.rs`; candle's fused inference
//! kernels have none), plain candle ops off the CPU. Activations stay packed one row per token
//! (`[B·T, width]`) from the embedding to the logits, so the autograd graph holds only ops
//! that compute.

use super::causal_attention::causal_attention;
use super::linear::{linear, linear_add};
use super::lora::{self, LoraConfig};
use super::row_ops::{rms_norm, rope_i, swiglu, target_logprobs};
use crate::arch::llama::PREV_TOKEN_EMBD;
use crate::arch::vision::{VisionConfig, IMAGE_TOKEN, PATCH_BIAS, PATCH_EMBD, POSITION_EMBD};
use crate::text::chat_template::CHATML;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::Path;

/// What can go wrong building, reading or writing a trainable policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyFileError {
    #[error(transparent)]
    Gguf(#[from] crate::arch::gguf::GgufError),
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafeTensorError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A file or setting that does not fit this policy, with what is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// `Err(Invalid(message))` unless `ok`.
fn check(ok: bool, message: impl FnOnce() -> String) -> std::result::Result<(), PolicyFileError> {
    if ok {
        Ok(())
    } else {
        Err(PolicyFileError::Invalid(message()))
    }
}

/// The architecture's sizes.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LmConfig {
    pub vocab: usize,
    pub layers: usize,
    pub width: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention; `heads` for plain multi-head).
    pub kv_heads: usize,
    /// Hidden size of the SwiGLU MLP.
    pub ffn: usize,
    /// Longest sequence.
    pub context: usize,
    pub rope_base: f32,
    pub eps: f32,
    /// A second embedding table indexed by each position's *previous* token, added to the
    /// token embedding (`x_t = E[tok_t] + E_prev[tok_{t−1}]`; row `vocab` stands for "no
    /// previous token"). It hands the first layer the bigram a copy needs: a head can match
    /// the current token against the key position's previous token and copy what followed —
    /// an induction head in one layer. Without it, copying waits for a previous-token head to
    /// form, a plateau whose length varies by thousands of steps with the seed (the smeared
    /// keys of Olsson et al. 2022, "In-context learning and induction heads", at the input).
    /// On `arith:2` with 4 heads of 16: copying began after 299 to over 3,000 SFT steps
    /// without it, 610–1,210 with it (BENCHMARKS.md).
    #[serde(default)]
    pub prev_token: bool,
    /// A picture input (`vision.rs`): patch rows enter at the placeholder tokens.
    #[serde(default)]
    pub vision: Option<VisionConfig>,
}

impl LmConfig {
    /// A from-scratch config over the byte vocabulary (`byte_vocab`).
    pub fn bytes(layers: usize, width: usize, heads: usize, context: usize) -> Self {
        LmConfig {
            vocab: byte_vocab().0.len(),
            layers,
            width,
            heads,
            kv_heads: heads,
            ffn: width.saturating_mul(4),
            context,
            rope_base: 10_000.0,
            eps: 1e-5,
            prev_token: false,
            vision: None,
        }
    }

    /// This config with a picture input of `side × side` pixels in `patch × patch` patches; the
    /// placeholder token joins the vocabulary as its last entry (`byte_vocab` then `<|image|>`).
    pub fn with_vision(self, side: usize, patch: usize) -> Self {
        let image_token = self.vocab as u32;
        LmConfig { vocab: self.vocab + 1, vision: Some(VisionConfig { side, patch, image_token }), ..self }
    }

    pub fn head_dim(&self) -> usize {
        self.width / self.heads.max(1)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.heads == 0 || self.width % self.heads != 0 || (self.width / self.heads) % 2 != 0 {
            return Err(format!("width ({}) must be an even multiple of heads ({})", self.width, self.heads));
        }
        if self.kv_heads == 0 || self.heads % self.kv_heads != 0 {
            return Err(format!("heads ({}) must be a multiple of kv_heads ({})", self.heads, self.kv_heads));
        }
        if self.layers == 0 || self.vocab == 0 || self.context == 0 || self.ffn == 0 {
            return Err("layers, vocab, ffn and context must be at least 1".into());
        }
        if let Some(v) = &self.vision {
            v.validate()?;
            if v.image_token as usize >= self.vocab {
                return Err(format!("the image token {} is outside the vocabulary of {}", v.image_token, self.vocab));
            }
        }
        Ok(())
    }

    /// Weights of the model (tied output): embedding (and the previous-token table, (vocab +
    /// 1)·w), per block two norms (2w), q and out (2w²), k and v (2·w·kv·hd), gate, up, down
    /// (3·w·ffn); the final norm.
    /// Counted in 128 bits and saturated, so absurd dimensions give a huge count, not an
    /// overflow.
    pub fn parameters(&self) -> usize {
        let (w, l, v, f) = (self.width as u128, self.layers as u128, self.vocab as u128, self.ffn as u128);
        let kv = (self.kv_heads * self.head_dim()) as u128;
        let prev = if self.prev_token { (v + 1) * w } else { 0 };
        // The patch projection with its bias, and the position table.
        let vision = self.vision.map_or(0, |c| (c.patch_values() as u128 + 1 + c.patches() as u128) * w);
        let total = v * w + prev + l * (2 * w + 2 * w * w + 2 * w * kv + 3 * w * f) + w + vision;
        usize::try_from(total).unwrap_or(usize::MAX)
    }

    /// Every weight's GGUF name and shape `[out, in]` (norms `[w]`).
    fn shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (w, f, kv) = (self.width, self.ffn, self.kv_heads * self.head_dim());
        let mut out =
            vec![("token_embd.weight".to_string(), vec![self.vocab, w]), ("output_norm.weight".into(), vec![w])];
        if self.prev_token {
            out.push((PREV_TOKEN_EMBD.into(), vec![self.vocab + 1, w]));
        }
        if let Some(v) = &self.vision {
            out.extend(v.shapes(w));
        }
        for l in 0..self.layers {
            for (module, shape) in [
                ("attn_norm", vec![w]),
                ("attn_q", vec![w, w]),
                ("attn_k", vec![kv, w]),
                ("attn_v", vec![kv, w]),
                ("attn_output", vec![w, w]),
                ("ffn_norm", vec![w]),
                ("ffn_gate", vec![f, w]),
                ("ffn_up", vec![f, w]),
                ("ffn_down", vec![w, f]),
            ] {
                out.push((format!("blk.{l}.{module}.weight"), shape));
            }
        }
        out
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

/// GGUF metadata of a from-scratch model: llama architecture, the byte vocabulary, ChatML.
fn byte_metadata(c: &LmConfig) -> Vec<(String, Value)> {
    let u = |x: usize| Value::U32(x as u32);
    let (mut pieces, mut scores, mut types) = byte_vocab();
    if c.vision.is_some() {
        pieces.push(IMAGE_TOKEN.into());
        scores.push(0.0);
        types.push(3);
    }
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("kaizen-tiny".into())),
        ("llama.block_count", u(c.layers)),
        ("llama.context_length", u(c.context)),
        ("llama.embedding_length", u(c.width)),
        ("llama.feed_forward_length", u(c.ffn)),
        ("llama.attention.head_count", u(c.heads)),
        ("llama.attention.head_count_kv", u(c.kv_heads)),
        ("llama.rope.dimension_count", u(c.head_dim())),
        ("llama.rope.freq_base", Value::F32(c.rope_base)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(c.eps)),
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
    let mut out: Vec<(String, Value)> = meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    out.extend(c.vision.iter().flat_map(VisionConfig::metadata));
    out
}

fn poisoned<T>(_: T) -> candle_core::Error {
    candle_core::Error::Msg("variables poisoned".into())
}

pub struct TrainableLm {
    pub cfg: LmConfig,
    /// The weights that train: all of them from scratch, the adapters under LoRA.
    vars: VarMap,
    /// The weights that stay as loaded (LoRA's base model).
    frozen: HashMap<String, Tensor>,
    lora: Option<LoraConfig>,
    /// What `write_gguf` writes besides tensors: the base file's tokenizer, template, sizes.
    metadata: Vec<(String, Value)>,
    cos: Tensor,
    sin: Tensor,
    /// `vision::logit_mask` of a vision model.
    logit_mask: Option<Tensor>,
}

/// `N(0, std²)` values from a seeded generator (Box–Muller; candle's CPU generator cannot be
/// seeded).
pub(crate) fn normal(rng: &mut rand::rngs::StdRng, n: usize, std: f32) -> Vec<f32> {
    use rand::Rng;
    (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-12), rng.random());
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}

impl TrainableLm {
    fn assemble(
        cfg: LmConfig,
        vars: VarMap,
        frozen: HashMap<String, Tensor>,
        lora: Option<LoraConfig>,
        metadata: Vec<(String, Value)>,
        device: &Device,
    ) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let hd = cfg.head_dim();
        let inv: Vec<f32> = (0..hd / 2).map(|i| 1.0 / cfg.rope_base.powf(2.0 * i as f32 / hd as f32)).collect();
        let pos = Tensor::arange(0u32, cfg.context as u32, device)?.to_dtype(DType::F32)?.unsqueeze(1)?;
        let angles = pos.broadcast_mul(&Tensor::from_vec(inv, (1, hd / 2), device)?)?;
        let logit_mask = match &cfg.vision {
            Some(v) => Some(crate::arch::vision::logit_mask(cfg.vocab, v.image_token, device)?),
            None => None,
        };
        Ok(TrainableLm { cfg, vars, frozen, lora, metadata, cos: angles.cos()?, sin: angles.sin()?, logit_mask })
    }

    /// A freshly initialised model, the same for the same `seed`: N(0, 0.02) for embeddings
    /// and projections, output projections scaled by `1/√(2·layers)` (GPT-2), norms at 1.
    pub fn new(cfg: LmConfig, device: &Device, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        cfg.validate().map_err(candle_core::Error::Msg)?;
        let vars = VarMap::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let resid = 0.02 / (2.0 * cfg.layers as f32).sqrt();
        {
            let mut data = vars.data().lock().map_err(poisoned)?;
            for (name, shape) in cfg.shapes() {
                let n: usize = shape.iter().product();
                let values = if name == PATCH_BIAS {
                    vec![0.0; n]
                } else if shape.len() == 1 {
                    vec![1.0; n]
                } else if name.ends_with("attn_output.weight") || name.ends_with("ffn_down.weight") {
                    normal(&mut rng, n, resid)
                } else {
                    normal(&mut rng, n, 0.02)
                };
                data.insert(name, candle_core::Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?);
            }
        }
        Self::assemble(cfg, vars, HashMap::new(), None, byte_metadata(&cfg), device)
    }

    /// The sizes of a llama-architecture GGUF file, its context capped at `context`.
    fn config_of(
        g: &crate::arch::gguf::GgufFile,
        context: Option<usize>,
    ) -> std::result::Result<LmConfig, PolicyFileError> {
        let lc = crate::arch::llama::LlamaConfig::from_gguf(g)?;
        check(lc.arch == crate::arch::llama::Arch::Llama, || {
            format!("{}: only llama-architecture models train (this is {:?})", g.path.display(), lc.arch)
        })?;
        check(lc.head_dim * lc.n_head == lc.hidden, || format!("{}: head size × heads ≠ width", g.path.display()))?;
        Ok(LmConfig {
            vocab: lc.vocab_size,
            layers: lc.n_layer,
            width: lc.hidden,
            heads: lc.n_head,
            kv_heads: lc.n_kv_head,
            ffn: g.get_u32("llama.feed_forward_length")? as usize,
            context: context.map_or(lc.context_len, |c| c.min(lc.context_len)),
            rope_base: lc.rope_theta,
            eps: lc.rms_eps as f32,
            prev_token: g.has_tensor(PREV_TOKEN_EMBD),
            vision: VisionConfig::from_gguf(g)?,
        })
    }

    /// The weights of a GGUF file, dequantised to f32, checked against the config's shapes.
    fn weights_of(
        g: &crate::arch::gguf::GgufFile,
        cfg: &LmConfig,
        device: &Device,
    ) -> std::result::Result<Vec<(String, Tensor)>, PolicyFileError> {
        let mut shapes = cfg.shapes();
        if g.has_tensor("output.weight") {
            shapes.push(("output.weight".into(), vec![cfg.vocab, cfg.width]));
        }
        shapes
            .into_iter()
            .map(|(name, shape)| {
                let t = g.tensor(&name, device)?.dequantize(device)?;
                check(t.dims() == shape.as_slice(), || format!("{name}: shape {:?}, expected {shape:?}", t.dims()))?;
                Ok((name, t))
            })
            .collect()
    }

    fn metadata_of(g: &crate::arch::gguf::GgufFile) -> Vec<(String, Value)> {
        let mut m: Vec<(String, Value)> = g.metadata().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        m
    }

    /// A model whose every weight trains, from a GGUF file (one `write_gguf` wrote, or any
    /// llama-architecture model for full fine-tuning).
    pub fn load_gguf(path: &Path, device: &Device) -> std::result::Result<Self, PolicyFileError> {
        let g = crate::arch::gguf::GgufFile::open(path)?;
        let cfg = Self::config_of(&g, None)?;
        let vars = VarMap::new();
        {
            let mut data = vars.data().lock().map_err(poisoned)?;
            for (name, t) in Self::weights_of(&g, &cfg, device)? {
                data.insert(name, candle_core::Var::from_tensor(&t)?);
            }
        }
        Ok(Self::assemble(cfg, vars, HashMap::new(), None, Self::metadata_of(&g), device)?)
    }

    /// A pretrained GGUF model, frozen, with fresh LoRA adapters on `lora.targets` (seeded:
    /// `A ~ N(0, 1/in)`, `B = 0`, so the adapted model starts as the base model exactly).
    /// `context` caps the sequence length (and the rotary tables' memory).
    pub fn with_lora(
        path: &Path,
        lora: LoraConfig,
        context: usize,
        device: &Device,
        seed: u64,
    ) -> std::result::Result<Self, PolicyFileError> {
        lora.validate().map_err(PolicyFileError::Invalid)?;
        let g = crate::arch::gguf::GgufFile::open(path)?;
        let cfg = Self::config_of(&g, Some(context))?;
        let frozen: HashMap<String, Tensor> = Self::weights_of(&g, &cfg, device)?.into_iter().collect();
        let vars = lora::init_adapters(&lora, &frozen, cfg.layers, device, seed)?;
        Ok(Self::assemble(cfg, vars, frozen, Some(lora), Self::metadata_of(&g), device)?)
    }

    /// An independent copy of the trainable weights over the same frozen base (shared, not
    /// re-read): a KL reference next to the policy costs the adapters' memory, not the base's.
    pub fn copy(&self) -> Result<Self> {
        let vars = VarMap::new();
        {
            let mut data = vars.data().lock().map_err(poisoned)?;
            for (name, v) in self.vars.data().lock().map_err(poisoned)?.iter() {
                data.insert(name.clone(), candle_core::Var::from_tensor(&v.as_tensor().copy()?)?);
            }
        }
        let (cos, sin) = (self.cos.clone(), self.sin.clone());
        let (frozen, lora, metadata) = (self.frozen.clone(), self.lora.clone(), self.metadata.clone());
        let logit_mask = self.logit_mask.clone();
        Ok(TrainableLm { cfg: self.cfg, vars, frozen, lora, metadata, cos, sin, logit_mask })
    }

    /// The trainable variables (for the optimizer): every weight, or the adapters.
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    /// The trained variables by name (what an optimizer saves its state under).
    pub fn named_vars(&self) -> Result<HashMap<String, candle_core::Var>> {
        Ok(self.vars.data().lock().map_err(poisoned)?.clone())
    }

    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    pub(crate) fn get(&self, name: &str) -> Result<Tensor> {
        if let Some(t) = self.frozen.get(name) {
            return Ok(t.clone());
        }
        let data = self.vars.data().lock().map_err(poisoned)?;
        data.get(name).map(|v| v.as_tensor().clone()).ok_or_else(|| candle_core::Error::Msg(format!("no {name}")))
    }

    /// `x Wᵀ` for block `l`'s `module` on packed rows `x: [N, in]`, plus the adapter's
    /// `s · (x Aᵀ) Bᵀ` where it has one, plus `residual` when given (in the same op).
    fn project(&self, x: &Tensor, l: usize, module: &str, residual: Option<&Tensor>) -> Result<Tensor> {
        let name = format!("blk.{l}.{module}");
        let w = self.get(&format!("{name}.weight"))?;
        let y = match residual {
            Some(r) => linear_add(r, x, &w)?,
            None => linear(x, &w)?,
        };
        match &self.lora {
            Some(lora) if lora.adapts(module) => {
                let (a, b) = (self.get(&lora::a_name(&name))?, self.get(&lora::b_name(&name))?);
                y + (linear(&linear(x, &a)?, &b)? * lora.scale())?
            }
            _ => Ok(y),
        }
    }

    /// Logits `[B, T, vocab]` for ids `[B, T]` (`T ≤ context`).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let (x, _) = self.blocks(ids, None, None, None)?;
        self.logits(&x)?.reshape((b, t, self.cfg.vocab))
    }

    /// Logits `[N, vocab]` of packed hidden states `[N, w]`.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let out = self.get("output.weight").or_else(|_| self.get("token_embd.weight"))?;
        let logits = linear(&rms_norm(x, &self.get("output_norm.weight")?, self.cfg.eps)?, &out)?;
        match &self.logit_mask {
            Some(m) => logits.broadcast_add(m),
            None => Ok(logits),
        }
    }

    /// The picture input rows of the placeholders in columns `c0 .. c0 + t` of `ids` (all
    /// rows, in order), where row b's placeholders take, run by run, the patch rows of
    /// `pictures[b]`; `None` when those columns hold no placeholder. An error when a row has
    /// more placeholders than its pictures have rows (or pictures and no vision input).
    fn picture_rows(&self, ids: &Tensor, c0: usize, t: usize, pictures: &[Vec<String>]) -> Result<Option<Tensor>> {
        let Some(v) = &self.cfg.vision else {
            if pictures.iter().any(|p| !p.is_empty()) {
                candle_core::bail!("pictures given to a model without a picture input");
            }
            return Ok(None);
        };
        let rows = ids.to_vec2::<u32>()?;
        let (mut wanted, mut embedded, mut offset) = (Vec::new(), Vec::new(), 0u32);
        for (b, row) in rows.iter().enumerate() {
            let at = crate::arch::vision::placeholder_positions(row, v.image_token);
            let mine = pictures.get(b).map_or(&[][..], |p| p.as_slice());
            v.check_shown(at.len(), mine.len()).map_err(|e| candle_core::Error::Msg(format!("row {b}: {e}")))?;
            let inside: Vec<u32> =
                at.iter().enumerate().filter(|(_, &p)| p >= c0 && p < c0 + t).map(|(k, _)| offset + k as u32).collect();
            if !inside.is_empty() {
                let pixels = v.pixel_rows(mine, ids.device()).map_err(candle_core::Error::Msg)?;
                let (w, bias, pos) = (self.get(PATCH_EMBD)?, self.get(PATCH_BIAS)?, self.get(POSITION_EMBD)?);
                embedded.push(crate::arch::vision::embed_patches(&pixels, &w, &bias, &pos)?);
                wanted.extend(inside);
                offset += at.len() as u32;
            }
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let all = Tensor::cat(&embedded, 0)?;
        Ok(Some(all.index_select(&Tensor::new(wanted.as_slice(), ids.device())?, 0)?))
    }

    /// Packed input rows `[B·T, w]` of ids `[B, T]` whose first column follows token `before`
    /// (`[1, 1]`; `None`: at the start of the sequence): the token embedding, plus the previous
    /// token's (`LmConfig::prev_token`).
    fn embed(&self, ids: &Tensor, before: Option<&Tensor>, pictures: Option<&Tensor>) -> Result<Tensor> {
        let flat = ids.flatten_all()?;
        let mut x = self.get("token_embd.weight")?.embedding(&flat)?;
        if let Some(v) = &self.cfg.vision {
            x = crate::arch::vision::show_pictures(x, &flat, v.image_token, pictures)?;
        }
        let (b, t) = ids.dims2()?;
        if !self.cfg.prev_token || t == 0 {
            return Ok(x);
        }
        let first = match before {
            Some(token) => token.broadcast_as((b, 1))?,
            None => Tensor::full(self.cfg.vocab as u32, (b, 1), ids.device())?,
        };
        let prev = Tensor::cat(&[&first, &ids.narrow(1, 0, t - 1)?], 1)?;
        x + self.get(PREV_TOKEN_EMBD)?.embedding(&prev.flatten_all()?)?
    }

    /// The blocks over ids `[B, T]` placed after `prefix` (whose per-layer keys and values
    /// `[P, kv_heads·hd]` every row attends to; `before` is its last token). Returns the last
    /// hidden states and this call's own keys and values per layer, all packed one row per
    /// token: `[B·T, w]`, `[B·T, kv_heads·hd]`. Packed rows all the way (heads side by side, as
    /// the projections make them) keep the autograd graph to the ops that compute: every
    /// reshape or transpose in it would cost a gradient-sized copy and sum in the backward pass.
    fn blocks(
        &self,
        ids: &Tensor,
        prefix: Option<&[(Tensor, Tensor)]>,
        before: Option<&Tensor>,
        pictures: Option<&Tensor>,
    ) -> Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        let (b, t) = ids.dims2()?;
        let p = prefix.and_then(|kv| kv.first()).map(|(k, _)| k.dim(0)).transpose()?.unwrap_or(0);
        if p + t > self.cfg.context {
            candle_core::bail!("sequence of {} tokens exceeds the context of {}", p + t, self.cfg.context);
        }
        let (w, h, kvh) = (self.cfg.width, self.cfg.heads, self.cfg.kv_heads);
        let hd = w / h;
        let mut x = self.embed(ids, before, pictures)?;
        let (cos, sin) = (self.cos.narrow(0, p, t)?, self.sin.narrow(0, p, t)?);
        let scale = 1.0 / (hd as f64).sqrt();
        let mut own = Vec::with_capacity(self.cfg.layers);
        for l in 0..self.cfg.layers {
            let norm = |n: &str| self.get(&format!("blk.{l}.{n}.weight"));
            let xn = rms_norm(&x, &norm("attn_norm")?, self.cfg.eps)?;
            let q = rope_i(&self.project(&xn, l, "attn_q", None)?, &cos, &sin)?;
            let k = rope_i(&self.project(&xn, l, "attn_k", None)?, &cos, &sin)?;
            let v = self.project(&xn, l, "attn_v", None)?;
            let (ka, va) = match prefix {
                Some(kv) => {
                    // Each sequence's keys: the prefix's, then its own.
                    let joined = |pre: &Tensor, mine: &Tensor| {
                        let pre = pre.unsqueeze(0)?.broadcast_as((b, p, kvh * hd))?.contiguous()?;
                        Tensor::cat(&[&pre, &mine.reshape((b, t, kvh * hd))?], 1)?.reshape((b * (p + t), kvh * hd))
                    };
                    let (kp, vp) = &kv[l];
                    (joined(kp, &k)?, joined(vp, &v)?)
                }
                None => (k.clone(), v.clone()),
            };
            // Row i (position p + i) sees the whole prefix and the rows up to itself; each
            // key/value head serves `h / kvh` query heads.
            let y = causal_attention(&q, &ka, &va, b, hd, scale)?;
            own.push((k, v));
            x = self.project(&y, l, "attn_output", Some(&x))?;
            let xn = rms_norm(&x, &norm("ffn_norm")?, self.cfg.eps)?;
            let (gate, up) = (self.project(&xn, l, "ffn_gate", None)?, self.project(&xn, l, "ffn_up", None)?);
            x = self.project(&swiglu(&gate, &up)?, l, "ffn_down", Some(&x))?;
        }
        Ok((x, own))
    }

    /// Teacher-forced log-probs `[B, T − 1]`: entry t is `log π(ids[t+1] | ids[..=t])` at
    /// temperature `T` (`log softmax(logits / T)`), with gradients.
    pub fn token_logprobs(&self, ids: &Tensor, temperature: f32) -> Result<Tensor> {
        self.logprobs_of(ids, &[], temperature)
    }

    /// `token_logprobs` of rows whose placeholders show `pictures[b]` (row b's pictures in
    /// order).
    fn logprobs_of(&self, ids: &Tensor, pictures: &[Vec<String>], temperature: f32) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let shown = self.picture_rows(ids, 0, t - 1, pictures)?;
        let (x, _) = self.blocks(&ids.narrow(1, 0, t - 1)?, None, None, shown.as_ref())?;
        let targets = ids.narrow(1, 1, t - 1)?.flatten_all()?;
        target_logprobs(&self.logits(&x)?, &targets, temperature)?.reshape((b, t - 1))
    }

    /// `token_logprobs` for rows that all begin with the same `shared` tokens (the env's
    /// prompt): the shared part runs once, as one row, and every row attends to its keys and
    /// values — the same numbers for far less work when the prompt dominates the sequence.
    /// Entries `t < shared − 1` (tokens inside the shared part) are not computed and are 0:
    /// callers mask them (prompt tokens are never trained on).
    ///
    /// `pictures[b]` are row b's pictures, in the order of its placeholder runs (none: a text
    /// batch). The shared part ends before the first placeholder: the same placeholder ids
    /// may show different pictures in different rows.
    pub fn token_logprobs_shared(
        &self,
        ids: &Tensor,
        shared: usize,
        pictures: &[Vec<String>],
        temperature: f32,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let shared = match &self.cfg.vision {
            Some(v) => {
                let first = ids.narrow(0, 0, 1)?.flatten_all()?.to_vec1::<u32>()?;
                shared.min(first.iter().position(|&x| x == v.image_token).unwrap_or(t))
            }
            None => shared,
        };
        if shared < 2 || shared >= t {
            return self.logprobs_of(ids, pictures, temperature);
        }
        let vocab = self.cfg.vocab;
        let prompt = ids.narrow(0, 0, 1)?.narrow(1, 0, shared)?;
        let (xp, kv) = self.blocks(&prompt, None, None, None)?;
        // Logits at shared−1 … t−2 predict tokens shared … t−1.
        let last = self.logits(&xp.narrow(0, shared - 1, 1)?)?.unsqueeze(0)?.broadcast_as((b, 1, vocab))?;
        let rest = ids.narrow(1, shared, t - shared)?;
        let before = prompt.narrow(1, shared - 1, 1)?;
        let shown = self.picture_rows(ids, shared, t - shared - 1, pictures)?;
        let (xs, _) = self.blocks(&rest.narrow(1, 0, t - shared - 1)?, Some(&kv), Some(&before), shown.as_ref())?;
        let own = self.logits(&xs)?.reshape((b, t - shared - 1, vocab))?;
        let logits = Tensor::cat(&[&last, &own], 1)?.reshape((b * (t - shared), vocab))?;
        let lp = target_logprobs(&logits, &rest.flatten_all()?, temperature)?.reshape((b, t - shared))?;
        let skipped = Tensor::zeros((b, shared - 1), lp.dtype(), lp.device())?;
        Tensor::cat(&[&skipped, &lp], 1)
    }

    /// Every weight as it serves: the trained ones, or the base with its adapters merged
    /// (`lora::merge`), by GGUF name, sorted.
    fn serving_weights(&self) -> Result<Vec<(String, Tensor)>> {
        let data = self.vars.data().lock().map_err(poisoned)?;
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (name, t) in self.frozen.iter().map(|(n, t)| (n.clone(), t.clone())) {
            let merged = match (&self.lora, name.strip_suffix(".weight")) {
                (Some(lora), Some(prefix)) if lora.adapts_tensor(prefix) => {
                    let get = |n: String| {
                        data.get(&n)
                            .map(|v| v.as_tensor().clone())
                            .ok_or_else(|| candle_core::Error::Msg(format!("no {n}")))
                    };
                    lora::merge(&t, &get(lora::a_name(prefix))?, &get(lora::b_name(prefix))?, lora.scale())?
                }
                _ => t,
            };
            out.push((name, merged));
        }
        if self.lora.is_none() {
            out.extend(data.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Writes the model for the inference runtime as a GGUF file with the base file's (or the
    /// byte vocabulary's) metadata, matrices in `dtype` (F32: the exact weights; Q8_0: a
    /// quarter of the size, what the runtime makes of F32 weights anyway), norms in F32 —
    /// atomically: a crash leaves the old file or the new one.
    pub fn write_gguf(&self, path: &Path, dtype: GgmlDType) -> std::result::Result<(), PolicyFileError> {
        let tensors = self
            .serving_weights()?
            .into_iter()
            .map(|(n, t)| {
                let fits = t.rank() == 2 && t.dim(1)? % dtype.block_size() == 0;
                Ok((n, QTensor::quantize(&t, if fits { dtype } else { GgmlDType::F32 })?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut metadata = self.metadata.clone();
        for (k, v) in metadata.iter_mut() {
            // The trained context, not the base's (the rotary tables were built for it).
            if k == "llama.context_length" {
                *v = Value::U32(self.cfg.context as u32);
            }
        }
        let tmp = path.with_extension("gguf.tmp");
        {
            let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            let m: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q)| (n.as_str(), q)).collect();
            gguf_file::write(&mut f, &m, &t)?;
            std::io::Write::flush(&mut f)?;
            f.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Writes the trainable weights (every weight, or the LoRA adapters) as safetensors, with
    /// the architecture and the LoRA config in the header: a run's checkpoint of its policy,
    /// or the adapters to share. Atomic, like `write_gguf`.
    pub fn save_trainable(&self, path: &Path) -> std::result::Result<(), PolicyFileError> {
        let data = self.vars.data().lock().map_err(poisoned)?;
        let mut tensors: Vec<(String, Tensor)> = data.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
        drop(data);
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let header = TrainableHeader { cfg: self.cfg, lora: self.lora.clone() };
        let meta = HashMap::from([(HEADER_KEY.to_string(), serde_json::to_string(&header)?)]);
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(n, t)| {
                let v = t.flatten_all()?.to_vec1::<f32>()?;
                Ok((n.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect(), t.dims().to_vec()))
            })
            .collect::<Result<_>>()?;
        let views = bytes
            .iter()
            .map(|(n, b, shape)| {
                Ok((n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)?))
            })
            .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()?;
        let tmp = path.with_extension("partial");
        safetensors::serialize_to_file(views, Some(meta), &tmp)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Sets the trainable weights from a file `save_trainable` wrote for the same architecture
    /// and LoRA config (anything else is refused, naming the difference).
    pub fn load_trainable(&self, path: &Path) -> std::result::Result<(), PolicyFileError> {
        let bytes = std::fs::read(path).map_err(|e| PolicyFileError::Invalid(format!("{}: {e}", path.display())))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
        let header: TrainableHeader = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(HEADER_KEY))
            .ok_or_else(|| PolicyFileError::Invalid(format!("{} is not a kaizen policy (no header)", path.display())))
            .and_then(|j| Ok(serde_json::from_str(j)?))?;
        check(header.cfg == self.cfg, || format!("{} is for {:?}, not {:?}", path.display(), header.cfg, self.cfg))?;
        check(header.lora == self.lora, || {
            format!("{} has adapters {:?}, this policy {:?}", path.display(), header.lora, self.lora)
        })?;
        let loaded = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        let data = self.vars.data().lock().map_err(poisoned)?;
        for (name, var) in data.iter() {
            let t =
                loaded.get(name).ok_or_else(|| PolicyFileError::Invalid(format!("{} lacks {name}", path.display())))?;
            var.set(&t.to_device(var.device())?)?;
        }
        Ok(())
    }
}

/// `save_trainable`'s header key.
const HEADER_KEY: &str = "kaizen_policy";

#[derive(serde::Serialize, serde::Deserialize)]
struct TrainableHeader {
    cfg: LmConfig,
    lora: Option<LoraConfig>,
}

#[cfg(test)]
#[path = "lm_tests.rs"]
mod tests;
