//! Unit tests of `optim` (kept in their own file beside it).

use super::*;
use candle_core::{Device, Tensor};
use candle_nn::Optimizer;

fn problem() -> (Var, HashMap<String, Var>) {
    let w = Var::from_tensor(&Tensor::new(&[0.5f32, -1.0, 2.0], &Device::Cpu).unwrap()).unwrap();
    let map = HashMap::from([("w".to_string(), w.clone())]);
    (w, map)
}

fn loss(w: &Var) -> Tensor {
    // Σ (w − target)², target = (1, 2, 3)
    let t = Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap();
    (w.as_tensor() - t).unwrap().sqr().unwrap().sum_all().unwrap()
}

#[test]
fn same_updates_as_candle_nn() {
    let (w1, map1) = problem();
    let (w2, _) = problem();
    let cfg = AdamWConfig { lr: 0.1, ..Default::default() };
    let mut ours = AdamW::new(&map1, cfg).unwrap();
    let params = candle_nn::ParamsAdamW { lr: 0.1, ..Default::default() };
    let mut theirs = candle_nn::AdamW::new(vec![w2.clone()], params).unwrap();
    for _ in 0..5 {
        ours.step(&loss(&w1).backward().unwrap()).unwrap();
        theirs.step(&loss(&w2).backward().unwrap()).unwrap();
    }
    let (a, b) = (w1.as_tensor().to_vec1::<f32>().unwrap(), w2.as_tensor().to_vec1::<f32>().unwrap());
    assert_eq!(a, b);
    // First step by hand: m̂ = g, v̂ = g², so θ ← θ(1 − 0.1·0.01) − 0.1·sign(g).
    let (w, map) = problem();
    let mut one = AdamW::new(&map, cfg).unwrap();
    one.step(&loss(&w).backward().unwrap()).unwrap();
    let got = w.as_tensor().to_vec1::<f32>().unwrap();
    for (g, want) in got.iter().zip([0.5 * 0.999 + 0.1, -1.0 * 0.999 + 0.1, 2.0 * 0.999 + 0.1]) {
        assert!((g - want).abs() < 1e-6, "{got:?}");
    }
}

#[test]
fn a_restored_optimizer_continues_identically() {
    let cfg = AdamWConfig { lr: 0.05, ..Default::default() };
    let (w1, map1) = problem();
    let mut straight = AdamW::new(&map1, cfg).unwrap();
    for _ in 0..6 {
        straight.step(&loss(&w1).backward().unwrap()).unwrap();
    }
    let (w2, map2) = problem();
    let mut first = AdamW::new(&map2, cfg).unwrap();
    for _ in 0..3 {
        first.step(&loss(&w2).backward().unwrap()).unwrap();
    }
    let (saved, step) = (first.moments(), first.step);
    let mut second = AdamW::new(&map2, cfg).unwrap();
    second.restore(&saved, step).unwrap();
    for _ in 0..3 {
        second.step(&loss(&w2).backward().unwrap()).unwrap();
    }
    assert_eq!(w1.as_tensor().to_vec1::<f32>().unwrap(), w2.as_tensor().to_vec1::<f32>().unwrap());
    assert!(second.restore(&HashMap::new(), 0).unwrap_err().contains("lacks w.m"));
}
