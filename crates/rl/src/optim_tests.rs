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
    // The same formula in one fused f32 pass instead of candle's op-by-op: equal to rounding.
    let (a, b) = (w1.as_tensor().to_vec1::<f32>().unwrap(), w2.as_tensor().to_vec1::<f32>().unwrap());
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} vs {b:?}");
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
    let (saved, step) = (first.moments().unwrap(), first.step);
    let mut second = AdamW::new(&map2, cfg).unwrap();
    second.restore(&saved, step).unwrap();
    for _ in 0..3 {
        second.step(&loss(&w2).backward().unwrap()).unwrap();
    }
    assert_eq!(w1.as_tensor().to_vec1::<f32>().unwrap(), w2.as_tensor().to_vec1::<f32>().unwrap());
    assert!(second.restore(&HashMap::new(), 0).unwrap_err().contains("lacks w.m"));
}

#[test]
fn the_fused_update_by_hand() {
    // m = 0.5, v = 0.25, g = 1, θ = 1 at step t = 2 with lr 0.1, λ 0.01:
    // m ← 0.9·0.5 + 0.1·1 = 0.55; v ← 0.999·0.25 + 0.001·1 = 0.25075;
    // m̂ = 0.55 / (1 − 0.9²) = 2.894737, v̂ = 0.25075 / (1 − 0.999²) = 125.4377;
    // θ ← 1·(1 − 0.001) − 0.1 · 2.894737 / (11.19990 + 1e-8) = 0.973154.
    let c = Coefficients {
        beta1: 0.9,
        beta2: 0.999,
        gain1: 0.1,
        gain2: 0.001,
        decay: 1.0 - 0.1 * 0.01,
        lr: 0.1,
        scale_m: 1.0 / (1.0 - 0.81),
        scale_v: 1.0 / (1.0 - 0.998001),
        eps: 1e-8,
    };
    let (mut m, mut v, mut theta) = ([0.5f32], [0.25f32], [1f32]);
    update_moments(&mut m, &mut v, &[1.0], c);
    assert!((m[0] - 0.55).abs() < 1e-7 && (v[0] - 0.25075).abs() < 1e-7, "{m:?} {v:?}");
    update_params(&mut theta, &m, &v, c);
    assert!((theta[0] - 0.973154).abs() < 1e-6, "{theta:?}");
}
