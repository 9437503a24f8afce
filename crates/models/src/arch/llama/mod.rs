//! A llama-family decoder (llama / SmolLM2, qwen2, qwen3) over GGUF weights, written for
//! kaizen's needs: logits for every position (teacher-forced scoring) or only the last
//! (sampling), a KV cache passed in explicitly, and batched decoding of several continuations
//! that share one prefilled prompt.
//!
//! Architecture: pre-norm blocks `x += Attn(RMSNorm(x)); x += MLP(RMSNorm(x))`, grouped-query
//! attention with rotary position embeddings, SwiGLU MLP `down(silu(gate(x)) * up(x))`.
//! qwen2 adds q/k/v biases; qwen3 adds RMSNorm on each head's q and k. GGUF stores llama's
//! q/k weights permuted for interleaved RoPE (`rope_i`); qwen uses the half-split form (`rope`).

use crate::arch::gguf::{GgufError, GgufFile};
use crate::arch::vision::VisionConfig;
use crate::kernels::q8_matmul::{Q8Linear, Q8Matrix};
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use std::sync::Arc;

mod block;
mod kv_cache;
use block::{Attention, Block, Mlp, Positions};
pub use kv_cache::KvCache;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
    Gemma3,
}

impl Arch {
    pub const SUPPORTED: &'static str = "llama, qwen2, qwen3, gemma3";
    fn parse(s: &str) -> Option<Self> {
        match s {
            "llama" => Some(Arch::Llama),
            "qwen2" => Some(Arch::Qwen2),
            "qwen3" => Some(Arch::Qwen3),
            "gemma3" => Some(Arch::Gemma3),
            _ => None,
        }
    }
}

/// The optional table of previous-token embeddings (`LmConfig::prev_token`): `[vocab + 1,
/// hidden]`, row `vocab` for "no previous token". kaizen's own from-scratch models have it.
pub const PREV_TOKEN_EMBD: &str = "token_embd_prev.weight";

/// Gemma 3 alternates 5 sliding-window layers with 1 global one.
const GEMMA3_SWA_PATTERN: usize = 6;
/// RoPE base of Gemma 3's sliding-window layers (the file's base is for the global ones).
const GEMMA3_LOCAL_ROPE_THETA: f32 = 10_000.0;

/// How weights are held in memory. `Q8_0` (default) re-quantises every matrix to 8 bits at
/// load for kaizen's int8 kernel (`q8_matmul`); `Native` keeps the file's own format on
/// candle's kernels; `F32` dequantises (exact, slowest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    #[default]
    Q8_0,
    Native,
    F32,
}

impl std::str::FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "q8_0" | "q8" => Ok(WeightFormat::Q8_0),
            "native" => Ok(WeightFormat::Native),
            "f32" => Ok(WeightFormat::F32),
            o => Err(format!("unknown weight format '{o}' (allowed: q8_0, native, f32)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LlamaConfig {
    pub arch: Arch,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub context_len: usize,
    pub rope_theta: f32,
    pub rms_eps: f64,
    pub vocab_size: usize,
    /// Gemma 3: keys a sliding-window layer sees (`query_pos − key_pos < window`).
    pub sliding_window: Option<usize>,
    /// Multiplies q·k (1/√head_dim unless the architecture says otherwise).
    pub attn_scale: f32,
    /// Gemma: `tanh(x / c) · c` on the logits, when the file asks for it.
    pub final_softcap: Option<f32>,
}

impl LlamaConfig {
    /// Whether layer `il` uses the sliding window (Gemma 3: all but every sixth).
    pub fn is_sliding(&self, il: usize) -> bool {
        self.sliding_window.is_some() && il % GEMMA3_SWA_PATTERN < GEMMA3_SWA_PATTERN - 1
    }

    pub fn from_gguf(g: &GgufFile) -> Result<Self, GgufError> {
        let arch_name = g.architecture()?.to_string();
        let arch = Arch::parse(&arch_name).ok_or_else(|| GgufError::UnknownArchitecture {
            path: g.path.clone(),
            arch: arch_name.clone(),
            supported: Arch::SUPPORTED.into(),
        })?;
        let k = |s: &str| format!("{arch_name}.{s}");
        let hidden = g.get_u32(&k("embedding_length"))? as usize;
        let n_head = g.get_u32(&k("attention.head_count"))? as usize;
        let head_dim = g.get_u32(&k("attention.key_length")).map(|x| x as usize).unwrap_or(if n_head > 0 {
            hidden / n_head
        } else {
            0
        });
        let vocab_size = g
            .get_u32(&k("vocab_size"))
            .map(|v| v as usize)
            .or_else(|_| g.get_str_array("tokenizer.ggml.tokens").map(|t| t.len()))?;
        let cfg = LlamaConfig {
            arch,
            n_layer: g.get_u32(&k("block_count"))? as usize,
            n_head,
            n_kv_head: g.get_u32(&k("attention.head_count_kv")).map(|x| x as usize).unwrap_or(n_head),
            head_dim,
            hidden,
            context_len: g.get_u32(&k("context_length"))? as usize,
            rope_theta: g.get_f32(&k("rope.freq_base")).unwrap_or(10_000.0),
            rms_eps: g.get_f32(&k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5) as f64,
            vocab_size,
            sliding_window: None,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            final_softcap: None,
        };
        let mut cfg = cfg;
        if arch == Arch::Gemma3 {
            cfg.sliding_window = g.get_u32(&k("attention.sliding_window")).ok().map(|w| w as usize).filter(|&w| w > 0);
            // Gemma 3 27B (62 layers) scales by hidden / heads instead (gemma_pytorch's config).
            if cfg.n_layer == 62 {
                cfg.attn_scale = 1.0 / ((cfg.hidden / cfg.n_head) as f32).sqrt();
            }
            if cfg.sliding_window.is_none() {
                cfg.final_softcap = g.get_f32(&k("final_logit_softcapping")).ok();
            }
        }
        if cfg.n_head == 0 || cfg.n_kv_head == 0 || cfg.n_head % cfg.n_kv_head != 0 || cfg.head_dim % 2 != 0 {
            return Err(GgufError::Corrupt {
                path: g.path.clone(),
                reason: format!("inconsistent attention shape: {} heads, {} kv heads", cfg.n_head, cfg.n_kv_head),
            });
        }
        Ok(cfg)
    }
}

/// A weight matrix in the chosen in-memory format.
enum Weight {
    /// kaizen's int8 kernel (`q8_matmul`).
    Q8(Q8Linear),
    /// candle's kernels: the file's own quantisation, or f32.
    Candle(QMatMul),
}

impl Weight {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Weight::Q8(q) => x.contiguous()?.apply_op1_no_bwd(q),
            Weight::Candle(m) => m.forward(x),
        }
    }
}

struct Linear {
    w: Weight,
    b: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.w.forward(x)?;
        match &self.b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// Several projections of the same input stacked into one matrix (q/k/v, gate/up): the input
/// is quantised and dispatched once, and the output split back. Rows are quantised one by one,
/// so stacking does not change any result.
struct StackedLinear {
    w: Weight,
    b: Option<Tensor>,
    splits: Vec<usize>,
}

impl StackedLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        let mut y = self.w.forward(x)?;
        if let Some(b) = &self.b {
            y = y.broadcast_add(b)?;
        }
        let mut out = Vec::with_capacity(self.splits.len());
        let mut start = 0;
        for &n in &self.splits {
            out.push(y.narrow(D::Minus1, start, n)?);
            start += n;
        }
        Ok(out)
    }
}

struct RmsNorm {
    w: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.w, self.eps)
    }
}

pub struct LlamaModel {
    pub cfg: LlamaConfig,
    embed: Tensor,
    /// `PREV_TOKEN_EMBD`, where the file has it.
    prev_embed: Option<Tensor>,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Weight,
    cos: Tensor,
    sin: Tensor,
    /// RoPE tables of sliding-window layers (Gemma 3), whose base differs.
    local_rope: Option<(Tensor, Tensor)>,
    /// The picture input of a vision model (`vision.rs`).
    vision: Option<VisionInput>,
    device: Device,
}

/// A vision model's patch embedding and its placeholder's logit mask.
struct VisionInput {
    cfg: VisionConfig,
    w: Tensor,
    b: Tensor,
    pos: Tensor,
    mask: Tensor,
}

/// Which positions to return logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    Last,
    All,
    /// No logits: the final-normed hidden states of every position, `[batch, seq, hidden]`
    /// (the features a Q-function reads from the policy itself).
    Hidden,
}

impl LlamaModel {
    pub fn load(g: &GgufFile, format: WeightFormat, device: &Device) -> Result<Self, GgufError> {
        let cfg = LlamaConfig::from_gguf(g)?;
        let err = |e: candle_core::Error| GgufError::Corrupt { path: g.path.clone(), reason: e.to_string() };
        let tensor = |name: &str| -> Result<QTensor, GgufError> {
            if !g.has_tensor(name) {
                return Err(GgufError::Corrupt { path: g.path.clone(), reason: format!("missing tensor {name}") });
            }
            g.tensor(name, device)
        };
        let f32_of = |name: &str| -> Result<Tensor, GgufError> { tensor(name)?.dequantize(device).map_err(err) };
        let matmul = |q: QTensor| -> Result<Weight, GgufError> {
            let dims = q.shape().dims().to_vec();
            match format {
                WeightFormat::Native => Ok(Weight::Candle(QMatMul::from_arc(Arc::new(q)).map_err(err)?)),
                WeightFormat::F32 => Ok(Weight::Candle(QMatMul::Tensor(q.dequantize(device).map_err(err)?))),
                WeightFormat::Q8_0 => match dims.as_slice() {
                    [n, k] if k % 32 == 0 => {
                        let w = q
                            .dequantize(device)
                            .map_err(err)?
                            .flatten_all()
                            .map_err(err)?
                            .to_vec1::<f32>()
                            .map_err(err)?;
                        let m = Q8Matrix::quantize(&w, *n, *k)
                            .map_err(|reason| GgufError::Corrupt { path: g.path.clone(), reason })?;
                        Ok(Weight::Q8(Q8Linear(m)))
                    }
                    _ => Ok(Weight::Candle(QMatMul::from_arc(Arc::new(q)).map_err(err)?)),
                },
            }
        };
        let linear = |prefix: &str| -> Result<Linear, GgufError> {
            let w = matmul(tensor(&format!("{prefix}.weight"))?)?;
            let bias_name = format!("{prefix}.bias");
            let b = if g.has_tensor(&bias_name) { Some(f32_of(&bias_name)?) } else { None };
            Ok(Linear { w, b })
        };
        // Stacks the rows of same-typed quantised matrices (rows are whole blocks, so bytes
        // concatenate); mixed types are stacked in f32 first.
        let stacked = |prefixes: &[String]| -> Result<StackedLinear, GgufError> {
            let qs = prefixes.iter().map(|p| tensor(&format!("{p}.weight"))).collect::<Result<Vec<_>, _>>()?;
            let k = qs[0].shape().dims()[1];
            let splits: Vec<usize> = qs.iter().map(|q| q.shape().dims()[0]).collect();
            let n: usize = splits.iter().sum();
            let same = qs.iter().all(|q| q.dtype() == qs[0].dtype() && q.shape().dims()[1] == k);
            let q = if same {
                let mut bytes = Vec::new();
                for q in &qs {
                    bytes.extend_from_slice(&q.data().map_err(err)?);
                }
                let st =
                    candle_core::quantized::QStorage::from_data(std::borrow::Cow::Owned(bytes), device, qs[0].dtype())
                        .map_err(err)?;
                QTensor::new(st, (n, k)).map_err(err)?
            } else {
                let parts =
                    qs.iter().map(|q| q.dequantize(device)).collect::<candle_core::Result<Vec<_>>>().map_err(err)?;
                QTensor::quantize(&Tensor::cat(&parts, 0).map_err(err)?, candle_core::quantized::GgmlDType::F32)
                    .map_err(err)?
            };
            let biases: Vec<String> = prefixes.iter().map(|p| format!("{p}.bias")).collect();
            let b = if biases.iter().all(|b| g.has_tensor(b)) {
                let parts = biases.iter().map(|b| f32_of(b)).collect::<Result<Vec<_>, _>>()?;
                Some(Tensor::cat(&parts, 0).map_err(err)?)
            } else {
                None
            };
            Ok(StackedLinear { w: matmul(q)?, b, splits })
        };
        let norm =
            |name: &str| -> Result<RmsNorm, GgufError> { Ok(RmsNorm { w: f32_of(name)?, eps: cfg.rms_eps as f32 }) };

        let embed_q = tensor("token_embd.weight")?;
        let embed = embed_q.dequantize(device).map_err(err)?;
        let prev_embed = if g.has_tensor(PREV_TOKEN_EMBD) { Some(f32_of(PREV_TOKEN_EMBD)?) } else { None };
        if let Some(p) = &prev_embed {
            if p.dims() != [cfg.vocab_size + 1, cfg.hidden] {
                let reason = format!("{PREV_TOKEN_EMBD} has shape {:?}, expected [vocab + 1, hidden]", p.dims());
                return Err(GgufError::Corrupt { path: g.path.clone(), reason });
            }
        }
        let lm_head = if g.has_tensor("output.weight") { matmul(tensor("output.weight")?)? } else { matmul(embed_q)? };
        let mut blocks = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("blk.{i}");
            let qk_norm = matches!(cfg.arch, Arch::Qwen3 | Arch::Gemma3);
            let post_norms = cfg.arch == Arch::Gemma3;
            let optional_norm = |on: bool, name: String| if on { norm(&name).map(Some) } else { Ok(None) };
            blocks.push(Block {
                attn_norm: norm(&format!("{p}.attn_norm.weight"))?,
                attn: Attention {
                    qkv: stacked(&[format!("{p}.attn_q"), format!("{p}.attn_k"), format!("{p}.attn_v")])?,
                    o: linear(&format!("{p}.attn_output"))?,
                    q_norm: if qk_norm { Some(norm(&format!("{p}.attn_q_norm.weight"))?) } else { None },
                    k_norm: if qk_norm { Some(norm(&format!("{p}.attn_k_norm.weight"))?) } else { None },
                },
                mlp_norm: norm(&format!("{p}.ffn_norm.weight"))?,
                mlp: Mlp {
                    gate_up: stacked(&[format!("{p}.ffn_gate"), format!("{p}.ffn_up")])?,
                    down: linear(&format!("{p}.ffn_down"))?,
                    gelu: cfg.arch == Arch::Gemma3,
                },
                post_attn_norm: optional_norm(post_norms, format!("{p}.post_attention_norm.weight"))?,
                post_mlp_norm: optional_norm(post_norms, format!("{p}.post_ffw_norm.weight"))?,
            });
        }
        let (cos, sin) = rope_tables(&cfg, cfg.rope_theta, device).map_err(err)?;
        let local_rope = match cfg.sliding_window {
            Some(_) => Some(rope_tables(&cfg, GEMMA3_LOCAL_ROPE_THETA, device).map_err(err)?),
            None => None,
        };
        let vision = match VisionConfig::from_gguf(g)? {
            None => None,
            Some(vc) => {
                let expect = vc.shapes(cfg.hidden);
                let mut t = Vec::with_capacity(3);
                for (name, shape) in &expect {
                    let x = f32_of(name)?;
                    if x.dims() != shape.as_slice() {
                        let reason = format!("{name} has shape {:?}, expected {shape:?}", x.dims());
                        return Err(GgufError::Corrupt { path: g.path.clone(), reason });
                    }
                    t.push(x);
                }
                let mask = crate::arch::vision::logit_mask(cfg.vocab_size, vc.image_token, device).map_err(err)?;
                let (pos, b, w) = (t.pop(), t.pop(), t.pop());
                match (w, b, pos) {
                    (Some(w), Some(b), Some(pos)) => Some(VisionInput { cfg: vc, w, b, pos, mask }),
                    _ => None,
                }
            }
        };
        Ok(LlamaModel {
            vision,
            norm: norm("output_norm.weight")?,
            cfg,
            embed,
            prev_embed,
            blocks,
            lm_head,
            cos,
            sin,
            local_rope,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The picture input, for a vision model.
    pub fn vision(&self) -> Option<&VisionConfig> {
        self.vision.as_ref().map(|v| &v.cfg)
    }

    /// Input rows `[k · patches, hidden]` of pixel rows `[k · patches, values]`
    /// (`VisionConfig::pixel_rows`).
    pub fn embed_pictures(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        match &self.vision {
            Some(v) => crate::arch::vision::embed_patches(pixels, &v.w, &v.b, &v.pos),
            None => candle_core::bail!("this model has no picture input"),
        }
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.n_layer)
    }

    /// Runs `ids` (`[batch, seq]`) on every row of the cache (row i takes `ids[i]`), appending
    /// to it. Returns logits `[batch, vocab]` for `Logits::Last` or `[batch, seq, vocab]` for
    /// `All`.
    pub fn forward(&self, ids: &Tensor, cache: &mut KvCache, which: Logits) -> candle_core::Result<Tensor> {
        let b = ids.dim(0)?;
        if cache.lens.is_empty() {
            cache.lens = vec![0; b];
            cache.last = vec![None; b];
        }
        if cache.rows() != b {
            candle_core::bail!("a batch of {b} sequences on a cache of {} rows", cache.rows());
        }
        let rows: Vec<usize> = (0..b).collect();
        self.forward_rows(ids, &rows, cache, which)
    }

    /// Runs `ids[i]` on cache row `rows[i]`, each at that row's own position. One token per
    /// row (`seq = 1`) decodes rows at any positions together — the batched step of
    /// concurrent sequences; several tokens per row need the rows at one position.
    ///
    /// A row's result does not depend on which other rows share the batch: matmuls are
    /// row-wise and attention reads only the row's own keys.
    pub fn forward_rows(
        &self,
        ids: &Tensor,
        rows: &[usize],
        cache: &mut KvCache,
        which: Logits,
    ) -> candle_core::Result<Tensor> {
        self.forward_rows_with(ids, rows, cache, which, None)
    }

    /// `forward_rows` with pictures: `pictures` (`embed_pictures`) are the input rows of this
    /// call's placeholder tokens, in order (batch row by batch row). A vision model refuses a
    /// call whose placeholders and picture rows differ in number.
    pub fn forward_rows_with(
        &self,
        ids: &Tensor,
        rows: &[usize],
        cache: &mut KvCache,
        which: Logits,
        pictures: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, s) = ids.dims2()?;
        if rows.len() != b || rows.iter().any(|&r| r >= cache.rows()) {
            candle_core::bail!("rows {rows:?} for a batch of {b} on a cache of {} rows", cache.rows());
        }
        let positions: Vec<usize> = rows.iter().map(|&r| cache.lens[r]).collect();
        let pos = positions.iter().copied().max().unwrap_or(0);
        if s > 1 && positions.iter().any(|&p| p != pos) {
            candle_core::bail!("several tokens per row need the rows at one position, got {positions:?}");
        }
        if pos + s > self.cfg.context_len {
            candle_core::bail!("sequence of {} tokens exceeds the context window of {}", pos + s, self.cfg.context_len);
        }
        let flat = ids.flatten_all()?;
        let mut x = self.embed.index_select(&flat, 0)?;
        if let Some(v) = &self.vision {
            x = crate::arch::vision::show_pictures(x, &flat, v.cfg.image_token, pictures)?;
        } else if pictures.is_some() {
            candle_core::bail!("this model has no picture input");
        }
        let mut x = x.reshape((b, s, self.cfg.hidden))?;
        if let Some(table) = &self.prev_embed {
            x = (x + self.prev_token_inputs(table, ids, rows, cache)?)?;
        }
        if self.cfg.arch == Arch::Gemma3 {
            x = (x * (self.cfg.hidden as f64).sqrt())?;
        }
        // RoPE angles: `[s, hd/2]` shared by the batch, or `[b, 1, hd/2]` for one token per row.
        let angles = |table: &Tensor| -> candle_core::Result<Tensor> {
            if s == 1 {
                let idx: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
                table.index_select(&Tensor::new(idx.as_slice(), &self.device)?, 0)?.unsqueeze(1)
            } else {
                table.narrow(0, pos, s)
            }
        };
        let global = (angles(&self.cos)?, angles(&self.sin)?);
        let local = match &self.local_rope {
            Some((c, si)) => Some((angles(c)?, angles(si)?)),
            None => None,
        };
        let mask = if s > 1 { Some(self.causal_mask(s, pos, None)?) } else { None };
        let window_mask = match (s > 1, self.cfg.sliding_window) {
            (true, Some(w)) => Some(self.causal_mask(s, pos, Some(w))?),
            _ => None,
        };
        for (layer, block) in self.blocks.iter().enumerate() {
            let sliding = self.cfg.is_sliding(layer);
            let (cos, sin) = if sliding { local.as_ref().unwrap_or(&global) } else { &global };
            let at = Positions {
                cos,
                sin,
                mask: if sliding { window_mask.as_ref() } else { mask.as_ref() },
                window: if sliding { self.cfg.sliding_window } else { None },
            };
            x = block.forward(&self.cfg, x, &at, cache, rows, layer)?;
        }
        cache.advance(rows, s);
        let x = match which {
            Logits::Last => x.narrow(1, s - 1, 1)?,
            Logits::All => x,
            Logits::Hidden => return self.norm.forward(&x),
        };
        let mut logits = self.lm_head.forward(&self.norm.forward(&x)?)?;
        if let Some(c) = self.cfg.final_softcap {
            logits = ((logits / c as f64)?.tanh()? * c as f64)?;
        }
        if let Some(v) = &self.vision {
            logits = logits.broadcast_add(&v.mask)?;
        }
        match which {
            Logits::Last => logits.squeeze(1),
            _ => Ok(logits),
        }
    }

    /// `E_prev[previous token]` of every input position `[b, s, hidden]`: the row's last
    /// token before this call's first, then this call's own. Records each row's new last token.
    fn prev_token_inputs(
        &self,
        table: &Tensor,
        ids: &Tensor,
        rows: &[usize],
        cache: &mut KvCache,
    ) -> candle_core::Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let none = self.cfg.vocab_size as u32;
        let ids = ids.to_vec2::<u32>()?;
        cache.last.resize(cache.lens.len(), None);
        let mut prev = Vec::with_capacity(b * s);
        for (row, &r) in ids.iter().zip(rows) {
            prev.push(cache.last[r].unwrap_or(none));
            prev.extend_from_slice(&row[..row.len().saturating_sub(1)]);
            cache.last[r] = row.last().copied();
        }
        table.index_select(&Tensor::new(prev.as_slice(), &self.device)?, 0)?.reshape((b, s, self.cfg.hidden))
    }

    /// `[s, pos + s]`: 0 where query i (at position pos + i) may see key j — not after it and,
    /// with a window, less than `window` positions before it — else −∞.
    fn causal_mask(&self, s: usize, pos: usize, window: Option<usize>) -> candle_core::Result<Tensor> {
        let t = pos + s;
        let w = window.unwrap_or(usize::MAX);
        let m: Vec<f32> = (0..s)
            .flat_map(|i| (0..t).map(move |j| if j <= pos + i && pos + i - j < w { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        Tensor::from_vec(m, (s, t), &self.device)
    }
}

/// RoPE tables `cos, sin: [context, head_dim / 2]` with `θ_i = base^(−2i / head_dim)`.
fn rope_tables(cfg: &LlamaConfig, base: f32, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let half = cfg.head_dim / 2;
    let inv: Vec<f32> = (0..half).map(|i| 1.0 / base.powf(2.0 * i as f32 / cfg.head_dim as f32)).collect();
    let inv = Tensor::from_vec(inv, (1, half), device)?;
    let pos =
        Tensor::arange(0u32, cfg.context_len as u32, device)?.to_dtype(DType::F32)?.reshape((cfg.context_len, 1))?;
    let freqs = pos.broadcast_mul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

#[cfg(test)]
#[path = "llama_tests.rs"]
mod tests;
