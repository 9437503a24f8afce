//! Unit tests of `tiny`: shapes, causality, log-probs, and that it learns.

use super::*;
use crate::trainable::ByteTokenizer;
use candle_nn::Optimizer;

fn cfg() -> TinyConfig {
    TinyConfig { vocab: ByteTokenizer::VOCAB, layers: 2, width: 64, heads: 4, context: 64 }
}

fn ids(rows: &[&str]) -> Tensor {
    let t = ByteTokenizer;
    let seqs: Vec<Vec<u32>> = rows.iter().map(|r| t.encode(r)).collect();
    let n = seqs[0].len();
    assert!(seqs.iter().all(|s| s.len() == n));
    Tensor::from_vec(seqs.concat(), (rows.len(), n), &Device::Cpu).unwrap()
}

#[test]
fn parameter_count_matches_the_variables() {
    let vars = VarMap::new();
    let _m = TinyLm::new(cfg(), &vars, &Device::Cpu).unwrap();
    let total: usize = vars.all_vars().iter().map(|v| v.elem_count()).sum();
    assert_eq!(total, cfg().parameters());
    let bad = TinyConfig { heads: 5, ..cfg() };
    assert!(bad.validate().unwrap_err().contains("multiple of heads"));
}

#[test]
fn attention_is_causal_and_logprobs_are_normalised() {
    let vars = VarMap::new();
    let m = TinyLm::new(cfg(), &vars, &Device::Cpu).unwrap();
    let a = m.forward(&ids(&["12+30=42"])).unwrap();
    let b = m.forward(&ids(&["12+30=99"])).unwrap();
    assert_eq!(a.dims3().unwrap(), (1, 8, ByteTokenizer::VOCAB));
    // Positions before the change see the same logits.
    let diff = (a.narrow(1, 0, 6).unwrap() - b.narrow(1, 0, 6).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
    let lp = m.token_logprobs(&ids(&["12+30=42"]), 1.0).unwrap();
    assert_eq!(lp.dims2().unwrap(), (1, 7));
    // Each row of log softmax sums (in probability) to 1.
    let z = log_softmax(&a).unwrap().exp().unwrap().sum(D::Minus1).unwrap().flatten_all().unwrap();
    for s in z.to_vec1::<f32>().unwrap() {
        assert!((s - 1.0).abs() < 1e-4, "{s}");
    }
    assert!(m.forward(&Tensor::zeros((1, 65), DType::U32, &Device::Cpu).unwrap()).is_err());
}

#[test]
fn learns_a_small_corpus() {
    // Next-byte NLL on four fixed sequences falls from ~ln 259 = 5.56 to well under 1.
    let vars = VarMap::new();
    let m = TinyLm::new(cfg(), &vars, &Device::Cpu).unwrap();
    let batch = ids(&["17*23=391;", "12+30=42; ", "9*9=81;   ", "100-1=99; "]);
    let mut opt = candle_nn::AdamW::new(
        vars.all_vars(),
        candle_nn::ParamsAdamW { lr: 3e-3, weight_decay: 0.0, ..Default::default() },
    )
    .unwrap();
    let nll = |m: &TinyLm| m.token_logprobs(&batch, 1.0).unwrap().mean_all().unwrap().neg().unwrap();
    let first = nll(&m).to_scalar::<f32>().unwrap();
    for _ in 0..150 {
        opt.backward_step(&nll(&m)).unwrap();
    }
    let last = nll(&m).to_scalar::<f32>().unwrap();
    println!("NLL {first:.3} → {last:.3}");
    assert!(first > 5.0 && last < 0.8, "{first} → {last}");
}
