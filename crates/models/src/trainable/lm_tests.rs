//! Unit tests of `lm` (from scratch): shapes, causality, log-probs, learning, and the GGUF hand-off to the
//! inference runtime.

use super::*;
use crate::arch::llama::Logits;
use crate::{LocalLlm, WeightFormat};
use candle_nn::Optimizer;

fn cfg() -> LmConfig {
    LmConfig::bytes(2, 64, 4, 64)
}

/// `cfg` with previous-token embeddings.
fn prev_cfg() -> LmConfig {
    LmConfig { prev_token: true, ..cfg() }
}

/// Byte `b` is token `5 + b` in `byte_vocab`.
fn ids(rows: &[&str]) -> Tensor {
    let seqs: Vec<Vec<u32>> = rows.iter().map(|r| r.bytes().map(|b| 5 + b as u32).collect()).collect();
    let n = seqs[0].len();
    assert!(seqs.iter().all(|s| s.len() == n));
    Tensor::from_vec(seqs.concat(), (rows.len(), n), &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn parameter_count_matches_the_variables() {
    for c in [cfg(), prev_cfg()] {
        let m = TrainableLm::new(c, &Device::Cpu, 0).unwrap();
        let total: usize = m.vars().all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(total, c.parameters());
    }
    assert_eq!(prev_cfg().parameters() - cfg().parameters(), (cfg().vocab + 1) * 64);
    let m = TrainableLm::new(cfg(), &Device::Cpu, 0).unwrap();
    // Seeded: the same seed gives the same model, another seed another one.
    let x = ids(&["seeded"]);
    let same = TrainableLm::new(cfg(), &Device::Cpu, 0).unwrap().forward(&x).unwrap();
    let other = TrainableLm::new(cfg(), &Device::Cpu, 1).unwrap().forward(&x).unwrap();
    let here = m.forward(&x).unwrap();
    assert_eq!(max_diff(&same, &here), 0.0);
    assert!(max_diff(&other, &here) > 0.0);
    let bad = LmConfig { heads: 5, ..cfg() };
    assert!(bad.validate().unwrap_err().contains("multiple of heads"));
}

#[test]
fn attention_is_causal_and_logprobs_are_normalised() {
    let m = TrainableLm::new(cfg(), &Device::Cpu, 0).unwrap();
    let a = m.forward(&ids(&["12+30=42"])).unwrap();
    let b = m.forward(&ids(&["12+30=99"])).unwrap();
    assert_eq!(a.dims3().unwrap(), (1, 8, cfg().vocab));
    assert_eq!(max_diff(&a.narrow(1, 0, 6).unwrap(), &b.narrow(1, 0, 6).unwrap()), 0.0);
    let lp = m.token_logprobs(&ids(&["12+30=42"]), 1.0).unwrap();
    assert_eq!(lp.dims2().unwrap(), (1, 7));
    let z = candle_nn::ops::log_softmax(&a, candle_core::D::Minus1)
        .unwrap()
        .exp()
        .unwrap()
        .sum(candle_core::D::Minus1)
        .unwrap()
        .flatten_all()
        .unwrap();
    for s in z.to_vec1::<f32>().unwrap() {
        assert!((s - 1.0).abs() < 1e-4, "{s}");
    }
    assert!(m.forward(&Tensor::zeros((1, 65), DType::U32, &Device::Cpu).unwrap()).is_err());
}

#[test]
fn learns_a_small_corpus() {
    // Next-byte NLL on four fixed sequences falls from ~ln 261 = 5.56 to well under 1.
    let m = TrainableLm::new(cfg(), &Device::Cpu, 0).unwrap();
    let batch = ids(&["17*23=391;", "12+30=42; ", "9*9=81;   ", "100-1=99; "]);
    let params = candle_nn::ParamsAdamW { lr: 3e-3, weight_decay: 0.0, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(m.vars().all_vars(), params).unwrap();
    let nll = |m: &TrainableLm| m.token_logprobs(&batch, 1.0).unwrap().mean_all().unwrap().neg().unwrap();
    let first = nll(&m).to_scalar::<f32>().unwrap();
    for _ in 0..150 {
        opt.backward_step(&nll(&m)).unwrap();
    }
    let last = nll(&m).to_scalar::<f32>().unwrap();
    println!("NLL {first:.3} → {last:.3}");
    assert!(first > 5.0 && last < 0.8, "{first} → {last}");
}

#[test]
fn a_written_gguf_runs_in_the_inference_runtime_with_the_same_logits() {
    for (name, c) in [("plain", cfg()), ("prev-token", prev_cfg())] {
        runs_in_the_inference_runtime(name, c);
    }
}

fn runs_in_the_inference_runtime(name: &str, c: LmConfig) {
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix(&format!("kaizen-tiny-{name}-")).tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny.gguf");
    let m = TrainableLm::new(c, &Device::Cpu, 0).unwrap();
    m.write_gguf(&path, GgmlDType::F32).unwrap();

    let llm = LocalLlm::load(&path, WeightFormat::F32).unwrap();
    let chat = "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n";
    let toks = llm.tokenizer.encode(chat).unwrap();
    assert_eq!(toks[0], 2, "<|im_start|> is one control token");
    assert_eq!(llm.tokenizer.decode(&toks), chat, "lossless");
    assert!(llm.tokenizer.stop_ids.contains(&3), "<|im_end|> ends a turn");
    // The inference model (KV cache, fused kernels) computes the training model's logits.
    let x = Tensor::new(toks.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let mut cache = llm.model.new_cache();
    let served = llm.model.forward(&x, &mut cache, Logits::All).unwrap();
    let trained = m.forward(&x).unwrap();
    assert!(max_diff(&served, &trained) < 1e-4, "{name}: {}", max_diff(&served, &trained));
    // Token by token through the cache (each step's input needs the token before it), and on
    // two rows repeated from one prefill.
    let n = toks.len();
    let mut cache = llm.model.new_cache();
    let head = Tensor::new(&toks[..n - 3], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    llm.model.forward(&head, &mut cache, Logits::Last).unwrap();
    let mut two = cache.repeat_batch(2).unwrap();
    for (i, &tok) in toks.iter().enumerate().skip(n - 3) {
        let one = Tensor::new(&[tok], &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let step = llm.model.forward(&one, &mut cache, Logits::Last).unwrap();
        let want = trained.narrow(1, i, 1).unwrap().squeeze(1).unwrap();
        assert!(max_diff(&step, &want) < 1e-4, "{name}: decode at {i}: {}", max_diff(&step, &want));
        let pair = Tensor::new(&[[tok], [tok]], &Device::Cpu).unwrap();
        let rows = llm.model.forward(&pair, &mut two, Logits::Last).unwrap();
        assert!(max_diff(&rows.narrow(0, 1, 1).unwrap(), &want) < 1e-4, "{name}: repeated row at {i}");
    }
    // And it samples through the normal path.
    let params = kaizen_core::SamplingParams { max_tokens: 8, temperature: 1.0, seed: 1, ..Default::default() };
    let out = llm.generate(&toks, &params, &mut |_| true).unwrap();
    assert_eq!(out[0].token_ids.len(), out[0].logprobs.len());
    // Loading the file back for training gives the same model.
    let back = TrainableLm::load_gguf(&path, &Device::Cpu).unwrap();
    assert_eq!(back.cfg, m.cfg, "{name}");
    assert_eq!(max_diff(&back.forward(&x).unwrap(), &trained), 0.0);
}

#[test]
fn a_shared_prefix_gives_the_same_logprobs_and_gradients() {
    for c in [cfg(), prev_cfg()] {
        shares_a_prefix(c);
    }
}

fn shares_a_prefix(c: LmConfig) {
    let m = TrainableLm::new(c, &Device::Cpu, 3).unwrap();
    let batch = ids(&["The prompt: 17*23=391", "The prompt: 12+30=042", "The prompt: 99*99=981"]);
    let shared = "The prompt: ".len();
    let full = m.token_logprobs(&batch, 0.7).unwrap();
    let fast = m.token_logprobs_shared(&batch, shared, &[], 0.7).unwrap();
    let tail = |x: &Tensor| x.narrow(1, shared - 1, x.dim(1).unwrap() - shared + 1).unwrap();
    assert!(max_diff(&tail(&full), &tail(&fast)) < 1e-5, "{}", max_diff(&tail(&full), &tail(&fast)));
    // Entries inside the shared part are not computed.
    assert_eq!(
        fast.narrow(1, 0, shared - 1).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(),
        0.0
    );
    // Gradients of a loss on the tail agree, including for weights the prefix path uses.
    let mut weights = vec!["blk.0.attn_k.weight"];
    if c.prev_token {
        // Its row for the shared part's last token reaches the first row after it.
        weights.push(PREV_TOKEN_EMBD);
    }
    for name in weights {
        let grad = |lp: &Tensor| {
            let g = tail(lp).sum_all().unwrap().backward().unwrap();
            g.get(&m.get(name).unwrap()).unwrap().clone()
        };
        let (a, b) = (grad(&full), grad(&fast));
        let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(scale > 0.0, "{name}: no gradient");
        assert!(max_diff(&a, &b) < 1e-4 * scale.max(1.0), "{name}: {} vs scale {scale}", max_diff(&a, &b));
    }
    // Rows that end one token after the shared part: the rest of the blocks sees zero tokens.
    let batch = ids(&["The prompt: 1", "The prompt: 2"]);
    let n = batch.dim(1).unwrap();
    let (full, last) =
        (m.token_logprobs(&batch, 0.7).unwrap(), m.token_logprobs_shared(&batch, n - 1, &[], 0.7).unwrap());
    let at = |x: &Tensor| x.narrow(1, n - 2, 1).unwrap();
    assert!(max_diff(&at(&full), &at(&last)) < 1e-5, "{}", max_diff(&at(&full), &at(&last)));
}

#[test]
fn a_copy_computes_the_same_and_trains_apart() {
    let m = TrainableLm::new(cfg(), &Device::Cpu, 5).unwrap();
    let c = m.copy().unwrap();
    let x = ids(&["copy me"]);
    assert_eq!(max_diff(&m.forward(&x).unwrap(), &c.forward(&x).unwrap()), 0.0);
    let params = candle_nn::ParamsAdamW { lr: 1e-2, weight_decay: 0.0, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(c.vars().all_vars(), params).unwrap();
    opt.backward_step(&c.token_logprobs(&x, 1.0).unwrap().mean_all().unwrap().neg().unwrap()).unwrap();
    assert!(max_diff(&m.forward(&x).unwrap(), &c.forward(&x).unwrap()) > 0.0, "the copy did not train");
    let again = TrainableLm::new(cfg(), &Device::Cpu, 5).unwrap();
    assert_eq!(max_diff(&m.forward(&x).unwrap(), &again.forward(&x).unwrap()), 0.0);
}
