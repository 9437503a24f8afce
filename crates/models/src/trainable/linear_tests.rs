//! Unit tests of `linear` (kept in their own file beside it).

use super::super::kernel_tests::{assert_close as close, assert_same_gradients as same_gradients};
use super::*;
use candle_core::{Device, Var};

#[test]
fn projects_rows_by_hand() {
    // x = [[1, 2]], W = [[1, 0], [1, 1], [0, 3]] → x Wᵀ = [[1, 3, 6]].
    let dev = Device::Cpu;
    let x = Tensor::new(&[[1f32, 2.0]], &dev).unwrap();
    let w = Tensor::new(&[[1f32, 0.0], [1.0, 1.0], [0.0, 3.0]], &dev).unwrap();
    assert_eq!(linear(&x, &w).unwrap().to_vec2::<f32>().unwrap(), vec![vec![1.0, 3.0, 6.0]]);
}

#[test]
fn output_and_gradients_match_candles_matmul() {
    // 130 rows: two full blocks of 64 and a partial one.
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (130, 24), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (40, 24), &dev).unwrap()).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (130, 40), &dev).unwrap();
    let fused = linear(&x, &w).unwrap();
    let plain = x.matmul(&w.t().unwrap()).unwrap();
    close(&fused, &plain, 1e-5);
    same_gradients(&fused, &plain, &weights, &[&x, &w], 1e-4);
}

#[test]
fn a_frozen_weight_gets_no_gradient_and_its_input_still_does() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 4), &dev).unwrap()).unwrap();
    let frozen = Tensor::randn(0f32, 1.0, (5, 4), &dev).unwrap();
    let grads = linear(&x, &frozen).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&frozen).is_none(), "the frozen weight's gradient was computed");
    // ∂(Σ x Wᵀ)/∂x = 1 W: every row is W's column sums.
    let want = frozen.sum_keepdim(0).unwrap().broadcast_as((3, 4)).unwrap();
    close(grads.get(x.as_tensor()).unwrap(), &want, 1e-5);
}

#[test]
fn shapes_that_do_not_multiply_are_an_error() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((3, 4), candle_core::DType::F32, &dev).unwrap();
    assert!(linear(&x, &Tensor::zeros((5, 3), candle_core::DType::F32, &dev).unwrap()).is_err());
    assert!(linear(&x, &Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap()).is_err());
}

#[test]
fn linear_add_matches_the_sum_and_passes_the_gradient_to_the_residual() {
    let dev = Device::Cpu;
    let r = Var::from_tensor(&Tensor::randn(0f32, 1.0, (70, 16), &dev).unwrap()).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (70, 24), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (16, 24), &dev).unwrap()).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (70, 16), &dev).unwrap();
    let fused = linear_add(&r, &x, &w).unwrap();
    let plain = (r.as_tensor() + x.matmul(&w.t().unwrap()).unwrap()).unwrap();
    close(&fused, &plain, 1e-5);
    same_gradients(&fused, &plain, &weights, &[&r, &x, &w], 1e-4);
    let wrong = Tensor::zeros((70, 15), candle_core::DType::F32, &dev).unwrap();
    assert!(linear_add(&wrong, &x, &w).is_err(), "a residual of the wrong width");
}

#[test]
fn no_rows_in_no_rows_out() {
    // A shared-prefix batch whose rows end right after the prefix projects zero tokens.
    let dev = Device::Cpu;
    let x = Tensor::zeros((0, 4), candle_core::DType::F32, &dev).unwrap();
    let w = Tensor::zeros((5, 4), candle_core::DType::F32, &dev).unwrap();
    assert_eq!(linear(&x, &w).unwrap().dims(), &[0, 5]);
    assert_eq!(
        linear_add(&Tensor::zeros((0, 5), candle_core::DType::F32, &dev).unwrap(), &x, &w).unwrap().dims(),
        &[0, 5]
    );
}
