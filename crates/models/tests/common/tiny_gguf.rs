#![allow(dead_code)]
//! Writes tiny GGUF models with deterministic random weights and SmolLM2's vocabulary, one per
//! architecture kaizen runs, so that architectures without a downloadable model here (qwen2,
//! qwen3) are still checked against llama.cpp. Shared by the test and by
//! `examples/tiny_gguf.rs`, which writes the files llama.cpp's reference logits come from.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::Path;

pub const ARCHS: [&str; 4] = ["llama", "qwen2", "qwen3", "gemma3"];
pub const PROMPT: [u32; 10] = [1, 4093, 198, 19556, 905, 30, 216, 35, 36, 37];
/// gemma3 uses its own small SentencePiece vocabulary (ids below 300).
pub const GEMMA_PROMPT: [u32; 10] = [2, 4, 280, 281, 270, 271, 290, 268, 275, 5];
/// gemma3's sliding window: shorter than the prompt, so the window matters.
const GEMMA_WINDOW: usize = 4;
const HIDDEN: usize = 64;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 16;
const FFN: usize = 128;
const LAYERS: usize = 2;
/// gemma3 alternates 5 sliding-window layers with a global one: 6 layers have both kinds.
const GEMMA_LAYERS: usize = 6;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn tensor(&mut self, shape: &[usize], scale: f32, offset: f32) -> QTensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| offset + scale * self.next()).collect();
        let t = Tensor::from_vec(v, shape, &Device::Cpu).expect("shape");
        QTensor::quantize(&t, GgmlDType::F32).expect("f32")
    }
}

/// Writes `dir/tiny-{arch}.gguf`; `vocab_from` is a GGUF whose tokenizer metadata is copied.
/// An unreadable vocabulary file or an unwritable folder is an error naming it.
pub fn write(arch: &str, vocab_from: &Path, dir: &Path) -> Result<std::path::PathBuf, String> {
    let vocab_error = |e: &dyn std::fmt::Display| format!("vocabulary GGUF {}: {e}", vocab_from.display());
    let mut f = std::fs::File::open(vocab_from).map_err(|e| vocab_error(&e))?;
    let src = gguf_file::Content::read(&mut f).map_err(|e| vocab_error(&e))?;
    let meta_of = |key: &str| src.metadata.get(key).ok_or_else(|| vocab_error(&format!("no {key}")));
    let gemma = arch == "gemma3";
    let spm = spm_vocab();
    let vocab = if gemma {
        spm.0.len()
    } else {
        meta_of("tokenizer.ggml.tokens")?.to_vec().map_err(|e| vocab_error(&e))?.len()
    };
    let layers = if gemma { GEMMA_LAYERS } else { LAYERS };
    let mut rng = Lcg(0x5EED ^ arch.len() as u64 * 7919);
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), rng.tensor(&[vocab, HIDDEN], 0.5, 0.0)),
        ("output_norm.weight".into(), rng.tensor(&[HIDDEN], 0.1, 1.0)),
    ];
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    for l in 0..layers {
        let p = format!("blk.{l}");
        let w = 1.0 / (HIDDEN as f32).sqrt();
        tensors.push((format!("{p}.attn_norm.weight"), rng.tensor(&[HIDDEN], 0.1, 1.0)));
        tensors.push((format!("{p}.attn_q.weight"), rng.tensor(&[q, HIDDEN], w, 0.0)));
        tensors.push((format!("{p}.attn_k.weight"), rng.tensor(&[kv, HIDDEN], w, 0.0)));
        tensors.push((format!("{p}.attn_v.weight"), rng.tensor(&[kv, HIDDEN], w, 0.0)));
        tensors.push((format!("{p}.attn_output.weight"), rng.tensor(&[HIDDEN, q], w, 0.0)));
        if arch == "qwen2" {
            tensors.push((format!("{p}.attn_q.bias"), rng.tensor(&[q], 0.2, 0.0)));
            tensors.push((format!("{p}.attn_k.bias"), rng.tensor(&[kv], 0.2, 0.0)));
            tensors.push((format!("{p}.attn_v.bias"), rng.tensor(&[kv], 0.2, 0.0)));
        }
        if arch == "qwen3" || gemma {
            tensors.push((format!("{p}.attn_q_norm.weight"), rng.tensor(&[HEAD_DIM], 0.1, 1.0)));
            tensors.push((format!("{p}.attn_k_norm.weight"), rng.tensor(&[HEAD_DIM], 0.1, 1.0)));
        }
        tensors.push((format!("{p}.ffn_norm.weight"), rng.tensor(&[HIDDEN], 0.1, 1.0)));
        tensors.push((format!("{p}.ffn_gate.weight"), rng.tensor(&[FFN, HIDDEN], w, 0.0)));
        tensors.push((format!("{p}.ffn_up.weight"), rng.tensor(&[FFN, HIDDEN], w, 0.0)));
        tensors.push((format!("{p}.ffn_down.weight"), rng.tensor(&[HIDDEN, FFN], 1.0 / (FFN as f32).sqrt(), 0.0)));
        if gemma {
            tensors.push((format!("{p}.post_attention_norm.weight"), rng.tensor(&[HIDDEN], 0.1, 1.0)));
            tensors.push((format!("{p}.post_ffw_norm.weight"), rng.tensor(&[HIDDEN], 0.1, 1.0)));
        }
    }
    let k = |s: &str| format!("{arch}.{s}");
    let u = |x: usize| Value::U32(x as u32);
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (k("block_count"), u(layers)),
        (k("context_length"), u(256)),
        (k("embedding_length"), u(HIDDEN)),
        (k("feed_forward_length"), u(FFN)),
        (k("attention.head_count"), u(HEADS)),
        (k("attention.head_count_kv"), u(KV_HEADS)),
        (k("attention.key_length"), u(HEAD_DIM)),
        (k("attention.value_length"), u(HEAD_DIM)),
        (k("rope.dimension_count"), u(HEAD_DIM)),
        (k("rope.freq_base"), Value::F32(10000.0)),
        (k("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        (k("vocab_size"), u(vocab)),
    ];
    if gemma {
        let (pieces, scores, types) = spm;
        meta.push((k("attention.sliding_window"), u(GEMMA_WINDOW)));
        meta.push(("tokenizer.ggml.model".into(), Value::String("llama".into())));
        meta.push(("tokenizer.ggml.pre".into(), Value::String("default".into())));
        meta.push(("tokenizer.ggml.tokens".into(), Value::Array(pieces.into_iter().map(Value::String).collect())));
        meta.push(("tokenizer.ggml.scores".into(), Value::Array(scores.into_iter().map(Value::F32).collect())));
        meta.push(("tokenizer.ggml.token_type".into(), Value::Array(types.into_iter().map(Value::I32).collect())));
        for (key, id) in [("bos", 2u32), ("eos", 1), ("unknown", 3), ("padding", 0)] {
            meta.push((format!("tokenizer.ggml.{key}_token_id"), Value::U32(id)));
        }
        meta.push(("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)));
        meta.push(("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)));
    }
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.chat_template",
    ] {
        if !gemma {
            meta.push((key.into(), meta_of(key)?.clone()));
        }
    }
    let path = dir.join(format!("tiny-{arch}.gguf"));
    let write_error = |e: &dyn std::fmt::Display| format!("writing {}: {e}", path.display());
    let mut out = std::fs::File::create(&path).map_err(|e| write_error(&e))?;
    let m: Vec<(&str, &Value)> = meta.iter().map(|(a, b)| (a.as_str(), b)).collect();
    let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(a, b)| (a.as_str(), b)).collect();
    gguf_file::write(&mut out, &m, &t).map_err(|e| write_error(&e))?;
    Ok(path)
}

/// A small SentencePiece vocabulary: Gemma's specials, all 256 byte tokens, merged pieces and
/// single characters, scored so that the listed merges win in order (as SentencePiece scores
/// do). Returns (pieces, scores, token types).
pub fn spm_vocab() -> (Vec<String>, Vec<f32>, Vec<i32>) {
    let mut pieces: Vec<String> = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![3, 3, 3, 2, 3, 3];
    let mut scores = vec![0.0f32; 6];
    for b in 0..=255u8 {
        pieces.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    let merged = [
        "\u{2581}t",
        "he",
        "\u{2581}the",
        "in",
        "\u{2581}a",
        "er",
        "an",
        "on",
        "re",
        "\u{2581}th",
        "at",
        "en",
        "\u{2581}w",
        "or",
        "ing",
        "\u{2581}s",
        "is",
        "\u{2581}is",
        "\u{2581}c",
        "es",
        "ed",
        "\u{2581}o",
        "ll",
        "\u{2581}hello",
        "lo",
        "\u{2581}wor",
        "\u{2581}world",
        "\u{2581}\u{2581}",
        "ar",
        "\u{2581}user",
        "us",
        "se",
        "\u{2581}m",
        "ode",
        "el",
    ];
    for (i, p) in merged.iter().enumerate() {
        pieces.push(p.to_string());
        types.push(1);
        scores.push(-(i as f32));
    }
    let chars = "\u{2581}abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\n-:";
    for (i, c) in chars.chars().enumerate() {
        pieces.push(c.to_string());
        types.push(1);
        scores.push(-100.0 - i as f32);
    }
    (pieces, scores, types)
}
