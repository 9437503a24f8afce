//! LoRA on the real SmolLM2-135M-Instruct: the adapted model starts as the base model (same
//! logits as the inference runtime), only the adapters train and they learn, they save and load
//! as safetensors, and the merged model serves through `LocalLlm` with the trained logits.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use kaizen_models::arch::llama::Logits;
use kaizen_models::trainable::{LoraConfig, TrainableLm};
use kaizen_models::{LocalLlm, WeightFormat};

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

fn lora() -> LoraConfig {
    LoraConfig { rank: 4, alpha: 8.0, targets: vec!["attn_q".into(), "attn_v".into(), "ffn_down".into()] }
}

#[test]
fn smollm2_with_lora_trains_saves_and_serves() {
    let dev = Device::Cpu;
    let base = kaizen_models::home::gguf_path("smollm2").expect("run scripts/setup.sh");
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-lora-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let m = TrainableLm::with_lora(&base, lora(), 256, &dev, 0).unwrap();
    assert_eq!((m.cfg.layers, m.cfg.width, m.cfg.heads, m.cfg.kv_heads), (30, 576, 9, 3));

    // Only the adapters train: 30 blocks × (A [4, in] + B [out, 4]) for q (576→576),
    // v (576→192) and down (1536→576).
    let per_block = 4 * 576 + 576 * 4 + 4 * 576 + 192 * 4 + 4 * 1536 + 576 * 4;
    let trainable: usize = m.vars().all_vars().iter().map(|v| v.elem_count()).sum();
    assert_eq!(trainable, 30 * per_block);

    // With B = 0 the adapted model is the base model: the same logits as the runtime's.
    let runtime = LocalLlm::load(&base, WeightFormat::F32).unwrap();
    let text = "<|im_start|>user\nWhat is 17 * 23?<|im_end|>\n<|im_start|>assistant\n17 * 23 = 391";
    let toks = runtime.tokenizer.encode(text).unwrap();
    let x = Tensor::new(toks.as_slice(), &dev).unwrap().unsqueeze(0).unwrap();
    let served = runtime.model.forward(&x, &mut runtime.model.new_cache(), Logits::All).unwrap();
    let before = m.forward(&x).unwrap();
    assert!(max_diff(&served, &before) < 2e-3, "base logits differ by {}", max_diff(&served, &before));

    // The adapters learn: the answer's NLL falls.
    let nll = |m: &TrainableLm| {
        m.token_logprobs(&x, 1.0).unwrap().narrow(1, toks.len() - 8, 7).unwrap().mean_all().unwrap().neg().unwrap()
    };
    let params = candle_nn::ParamsAdamW { lr: 1e-2, weight_decay: 0.0, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(m.vars().all_vars(), params).unwrap();
    let first = nll(&m).to_scalar::<f32>().unwrap();
    for _ in 0..8 {
        opt.backward_step(&nll(&m)).unwrap();
    }
    let last = nll(&m).to_scalar::<f32>().unwrap();
    println!("answer NLL {first:.3} → {last:.3}");
    assert!(last < 0.5 * first, "{first} → {last}");
    let after = m.forward(&x).unwrap();

    // Adapters round-trip through safetensors into a differently seeded model.
    let adapters = dir.join("adapters.safetensors");
    m.save_trainable(&adapters).unwrap();
    let other = TrainableLm::with_lora(&base, lora(), 256, &dev, 1).unwrap();
    assert!(max_diff(&other.forward(&x).unwrap(), &after) > 1e-2);
    other.load_trainable(&adapters).unwrap();
    assert_eq!(max_diff(&other.forward(&x).unwrap(), &after), 0.0);
    // Adapters of another shape are refused with the difference named.
    let wrong = TrainableLm::with_lora(&base, LoraConfig { rank: 8, ..lora() }, 256, &dev, 1).unwrap();
    assert!(wrong.load_trainable(&adapters).unwrap_err().to_string().contains("adapters"));

    // Merged for serving: the runtime computes the trained model's logits.
    let merged = dir.join("merged.gguf");
    m.write_gguf(&merged, GgmlDType::F32).unwrap();
    let served = LocalLlm::load(&merged, WeightFormat::F32).unwrap();
    let logits = served.model.forward(&x, &mut served.model.new_cache(), Logits::All).unwrap();
    assert!(max_diff(&logits, &after) < 2e-3, "merged logits differ by {}", max_diff(&logits, &after));
    assert_eq!(served.tokenizer.encode(text).unwrap(), toks, "the base tokenizer travels with the merged model");
}
