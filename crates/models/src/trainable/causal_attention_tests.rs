//! Unit tests of `causal_attention` (kept in their own file beside it).

use super::super::kernel_tests::{assert_close as close, assert_same_gradients as same_gradients};
use super::*;
use candle_core::{Device, Var};

#[test]
fn matches_softmax_attention_by_hand() {
    // One head, d = 2, no prefix, two rows. Row 0 sees key 0 only: o₀ = v₀ = [1, 0].
    // Row 1: scores q₁·k = [1, 3] → p = [0.119203, 0.880797]; o₁ = [0.119203, 1.761594].
    let dev = Device::Cpu;
    let q = Tensor::new(&[9f32, 9.0, 1.0, 1.0], &dev).unwrap().reshape((2, 2)).unwrap();
    let k = Tensor::new(&[1f32, 0.0, 1.0, 2.0], &dev).unwrap().reshape((2, 2)).unwrap();
    let v = Tensor::new(&[1f32, 0.0, 0.0, 2.0], &dev).unwrap().reshape((2, 2)).unwrap();
    let o = causal_attention(&q, &k, &v, 1, 2, 1.0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want = [1.0, 0.0, 0.119203, 1.761594];
    assert!(o.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{o:?}");
}

#[test]
fn output_and_gradients_match_the_generic_path_with_a_prefix_and_grouped_heads() {
    let dev = Device::Cpu;
    // D = 20: one full 16-lane chunk plus a remainder; 6 query heads over 2 kv heads; 4 prefix keys.
    // T = 70 rows: a full block of 64 and a partial one.
    let (b, h, g, t, p, d) = (2, 6, 2, 70, 4, 20);
    let q = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b * t, h * d), &dev).unwrap()).unwrap();
    let k = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b * (p + t), g * d), &dev).unwrap()).unwrap();
    let v = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b * (p + t), g * d), &dev).unwrap()).unwrap();
    let w = Tensor::randn(0f32, 1.0, (b * t, h * d), &dev).unwrap();
    let scale = 1.0 / (d as f64).sqrt();
    let fused = causal_attention(&q, &k, &v, b, d, scale).unwrap();
    let generic = plain_causal_attention(&q, &k, &v, b, d, scale).unwrap();
    close(&fused, &generic, 1e-5);
    same_gradients(&fused, &generic, &w, &[&q, &k, &v], 1e-4);
}

#[test]
fn a_finite_difference_agrees_with_the_key_gradient() {
    // ∂L/∂k at one entry against (L(k + ε) − L(k − ε)) / 2ε, L = Σ o · w.
    let dev = Device::Cpu;
    let (b, h, g, t, d) = (1, 2, 1, 3, 4);
    let q = Tensor::randn(0f32, 1.0, (b * t, h * d), &dev).unwrap();
    let k = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b * t, g * d), &dev).unwrap()).unwrap();
    let v = Tensor::randn(0f32, 1.0, (b * t, g * d), &dev).unwrap();
    let w = Tensor::randn(0f32, 1.0, (b * t, h * d), &dev).unwrap();
    let loss = |k: &Tensor| (causal_attention(&q, k, &v, b, d, 0.5).unwrap() * &w).unwrap().sum_all().unwrap();
    let grad =
        loss(&k).backward().unwrap().get(k.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let base = k.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let eps = 1e-2f32;
    for idx in [0, 5, 11] {
        let at = |delta: f32| {
            let mut x = base.clone();
            x[idx] += delta;
            loss(&Tensor::from_vec(x, (b * t, g * d), &dev).unwrap()).to_scalar::<f32>().unwrap()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        assert!((numeric - grad[idx]).abs() < 2e-3, "entry {idx}: numeric {numeric}, analytic {}", grad[idx]);
    }
}

#[test]
fn shapes_that_do_not_fit_are_an_error() {
    let dev = Device::Cpu;
    let zeros = |rows: usize, cols: usize| Tensor::zeros((rows, cols), candle_core::DType::F32, &dev).unwrap();
    let (q, k) = (zeros(4, 3 * 8), zeros(4, 2 * 8));
    assert!(causal_attention(&q, &k, &k, 1, 8, 1.0).is_err(), "3 heads cannot share 2 kv heads");
    let short = zeros(3, 8);
    assert!(causal_attention(&q, &short, &short, 1, 8, 1.0).is_err(), "fewer keys than query rows");
    assert!(causal_attention(&q, &q, &q, 3, 8, 1.0).is_err(), "4 rows are not 3 sequences");
    assert!(causal_attention(&q, &q, &q, 1, 7, 1.0).is_err(), "24 columns are not heads 7 wide");
}
