//! llama, qwen2, qwen3 and gemma3 against llama.cpp: tiny models with random weights (SmolLM2's
//! vocabulary) are written here exactly as `bench/arch_reference.sh` wrote them for llama.cpp,
//! and kaizen's logits must match the reference logits committed in the fixture. This checks
//! what differs between the architectures: q/k/v biases (qwen2), per-head q/k RMSNorm (qwen3),
//! the RoPE layout (interleaved for llama, half-split for qwen and gemma), and for gemma3 its
//! sliding-window layers, post-norms, GELU MLP and SentencePiece tokenizer.

mod common;

use candle_core::Tensor;
use common::tiny_gguf;
use kaizen_models::arch::llama::Logits;
use kaizen_models::{LocalLlm, WeightFormat};

#[test]
fn tiny_models_match_llama_cpp_logits() {
    // The written models are ~43 MB: removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-arch-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    let vocab = kaizen_models::home::gguf_path("smollm2").expect("run scripts/setup.sh");
    let fixture = include_str!("fixtures/tiny_arch_llamacpp_logits.jsonl");
    let mut checked = 0;
    for line in fixture.lines() {
        let want: serde_json::Value = serde_json::from_str(line).unwrap();
        let arch = want["arch"].as_str().unwrap();
        let path = tiny_gguf::write(arch, &vocab, &dir).unwrap();
        let mut llm = LocalLlm::load(&path, WeightFormat::F32).unwrap();
        let mut cache = llm.model.new_cache();
        let prompt: &[u32] = if arch == "gemma3" { &tiny_gguf::GEMMA_PROMPT } else { &tiny_gguf::PROMPT };
        let ids = Tensor::new(prompt, llm.model.device()).unwrap().unsqueeze(0).unwrap();
        let logits =
            llm.model.forward(&ids, &mut cache, Logits::Last).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
        let mut worst = 0f64;
        for (id, l) in want["top_ids"].as_array().unwrap().iter().zip(want["top_logits"].as_array().unwrap()) {
            worst = worst.max((logits[id.as_u64().unwrap() as usize] as f64 - l.as_f64().unwrap()).abs());
        }
        for (i, l) in want["first_logits"].as_array().unwrap().iter().enumerate() {
            worst = worst.max((logits[i] as f64 - l.as_f64().unwrap()).abs());
        }
        // ggml computes GELU through an f16 lookup table; over gemma3's 6 GELU layers that
        // moves logits by ~2e-3, so its bound is wider.
        let bound = if arch == "gemma3" { 5e-3 } else { 2e-3 };
        assert!(worst < bound, "{arch}: max |Δ logit| = {worst}");
        // The most likely token agrees too.
        assert_eq!(
            kaizen_models::runtime::sampler::argmax(&logits) as u64,
            want["top_ids"][0].as_u64().unwrap(),
            "{arch}"
        );
        // Decoding token by token through the cache (the sliding window applied to cached
        // keys) gives the same last logits as the one-pass prefill.
        let mut cache = llm.model.new_cache();
        let mut last = Vec::new();
        for &t in prompt {
            let one = Tensor::new(&[t], llm.model.device()).unwrap().unsqueeze(0).unwrap();
            last = llm
                .model
                .forward(&one, &mut cache, Logits::Last)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
        }
        let step_worst = last.iter().zip(&logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(step_worst < 1e-3, "{arch}: decode vs prefill max |Δ| = {step_worst}");
        for case in want["tokens"].as_array().into_iter().flatten() {
            let text = case["text"].as_str().unwrap();
            let ids: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
            assert_eq!(llm.tokenizer.encode(text).unwrap(), ids, "{arch} tokenising {text:?}");
            assert_eq!(llm.tokenizer.decode(&ids), text, "{arch} decoding {text:?}");
        }
        if arch == "gemma3" {
            // The comparison can see the sliding window: without it the logits are far off.
            llm.model.cfg.sliding_window = None;
            let mut cache = llm.model.new_cache();
            let plain = llm
                .model
                .forward(&ids, &mut cache, Logits::Last)
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let off = plain.iter().zip(&logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(off > 0.05, "window off changed logits by only {off}");
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}
