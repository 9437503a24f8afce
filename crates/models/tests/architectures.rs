//! llama, qwen2 and qwen3 against llama.cpp: tiny models with random weights (SmolLM2's
//! vocabulary) are written here exactly as `bench/arch_reference.sh` wrote them for llama.cpp,
//! and kaizen's logits must match the reference logits committed in the fixture. This checks
//! what differs between the architectures: q/k/v biases (qwen2), per-head q/k RMSNorm (qwen3),
//! and the RoPE layout (interleaved for llama, half-split for qwen).

mod common;

use candle_core::Tensor;
use common::tiny_gguf;
use kaizen_models::llama::Logits;
use kaizen_models::{LocalLlm, WeightFormat};

#[test]
fn tiny_models_match_llama_cpp_logits() {
    let dir = std::env::temp_dir().join(format!("kaizen-arch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let vocab = kaizen_models::home::gguf_path("smollm2").expect("run scripts/setup.sh");
    let fixture = include_str!("fixtures/tiny_arch_llamacpp_logits.jsonl");
    let mut checked = 0;
    for line in fixture.lines() {
        let want: serde_json::Value = serde_json::from_str(line).unwrap();
        let arch = want["arch"].as_str().unwrap();
        let path = tiny_gguf::write(arch, &vocab, &dir);
        let llm = LocalLlm::load(&path, WeightFormat::F32).unwrap();
        let mut cache = llm.model.new_cache();
        let ids = Tensor::new(&tiny_gguf::PROMPT[..], llm.model.device()).unwrap().unsqueeze(0).unwrap();
        let logits =
            llm.model.forward(&ids, &mut cache, Logits::Last).unwrap().squeeze(0).unwrap().to_vec1::<f32>().unwrap();
        let mut worst = 0f64;
        for (id, l) in want["top_ids"].as_array().unwrap().iter().zip(want["top_logits"].as_array().unwrap()) {
            worst = worst.max((logits[id.as_u64().unwrap() as usize] as f64 - l.as_f64().unwrap()).abs());
        }
        for (i, l) in want["first_logits"].as_array().unwrap().iter().enumerate() {
            worst = worst.max((logits[i] as f64 - l.as_f64().unwrap()).abs());
        }
        assert!(worst < 2e-3, "{arch}: max |Δ logit| = {worst}");
        // The most likely token agrees too.
        assert_eq!(kaizen_models::sampler::argmax(&logits) as u64, want["top_ids"][0].as_u64().unwrap(), "{arch}");
        checked += 1;
    }
    assert_eq!(checked, 3);
}
