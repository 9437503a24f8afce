//! Unit tests of `row_ops` (kept in their own file beside it).

use super::super::kernel_tests::{assert_close as close, assert_same_gradients as same_gradients};
use super::*;
use candle_core::{Device, Var};

#[test]
fn rms_norm_by_hand() {
    // Row [3, 4]: mean of squares 12.5, rms √12.5 = 3.535534 (ε = 0); w = [1, 2]
    // → [0.848528, 2.262742].
    let dev = Device::Cpu;
    let x = Tensor::new(&[[3f32, 4.0]], &dev).unwrap();
    let w = Tensor::new(&[1f32, 2.0], &dev).unwrap();
    let y = rms_norm(&x, &w, 0.0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert!((y[0] - 0.848528).abs() < 1e-5 && (y[1] - 2.262742).abs() < 1e-5, "{y:?}");
}

#[test]
fn rms_norm_and_its_gradients_match_plain_ops() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 5, 24), &dev).unwrap()).unwrap();
    let w = Var::from_tensor(&Tensor::randn(1f32, 0.3, 24, &dev).unwrap()).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (3, 5, 24), &dev).unwrap();
    let fused = rms_norm(&x, &w, 1e-5).unwrap();
    let plain = candle_nn::ops::rms_norm_slow(&x, &w, 1e-5).unwrap();
    close(&fused, &plain, 1e-5);
    same_gradients(&fused, &plain, &weights, &[&x, &w], 1e-4);
}

#[test]
fn rms_norm_skips_a_frozen_weights_gradient() {
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 8), &dev).unwrap()).unwrap();
    let frozen = Tensor::randn(1f32, 0.3, 8, &dev).unwrap();
    let grads = rms_norm(&x, &frozen, 1e-5).unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&frozen).is_none() && grads.get(x.as_tensor()).is_some());
}

#[test]
fn rope_turns_pairs_by_hand_and_its_gradient_turns_back() {
    // One pair (1, 0) turned by 90° (cos 0, sin 1) → (0, 1). For L = y·[a, b], ∂x is [a, b]
    // turned by −90°: ([1, 2] → [2, −1]).
    let dev = Device::Cpu;
    let x = Var::from_tensor(&Tensor::new(&[1f32, 0.0], &dev).unwrap().reshape((1, 1, 1, 2)).unwrap()).unwrap();
    let (cos, sin) = (Tensor::new(&[[0f32]], &dev).unwrap(), Tensor::new(&[[1f32]], &dev).unwrap());
    let y = rope_i(&x, &cos, &sin).unwrap();
    assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![0.0, 1.0]);
    let w = Tensor::new(&[1f32, 2.0], &dev).unwrap().reshape((1, 1, 1, 2)).unwrap();
    let g = (y * w).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(dx, vec![2.0, -1.0]);
}

#[test]
fn rope_on_packed_tokens_matches_rope_on_unpacked_heads_and_the_plain_ops() {
    // B = 2 sequences of T = 3 tokens, H = 2 heads of D = 4: `[B·T, H·D]` rows hold a token's
    // heads side by side; `[B, H, T, D]` holds each head's tokens.
    let dev = Device::Cpu;
    let (b, t, h, d) = (2, 3, 2, 4);
    let packed = Tensor::randn(0f32, 1.0, (b * t, h * d), &dev).unwrap();
    let angles = Tensor::randn(0f32, 1.0, (t, d / 2), &dev).unwrap();
    let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
    let unpack = |x: &Tensor| x.reshape((b, t, h, d)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
    let by_head = rope_i(&unpack(&packed), &cos, &sin).unwrap();
    close(&unpack(&rope_i(&packed, &cos, &sin).unwrap()), &by_head, 1e-6);
    close(&plain_rope_i(&packed, &cos, &sin).unwrap(), &rope_i(&packed, &cos, &sin).unwrap(), 1e-6);
}

#[test]
fn ops_refuse_shapes_that_do_not_fit() {
    let dev = Device::Cpu;
    let x = Tensor::zeros((2, 8), candle_core::DType::F32, &dev).unwrap();
    assert!(rms_norm(&x, &Tensor::zeros(6, candle_core::DType::F32, &dev).unwrap(), 1e-5).is_err());
    let x = Tensor::zeros((1, 1, 3, 4), candle_core::DType::F32, &dev).unwrap();
    let short = Tensor::zeros((2, 2), candle_core::DType::F32, &dev).unwrap();
    assert!(rope_i(&x, &short, &short).is_err());
}

#[test]
fn swiglu_and_its_gradients_match_plain_ops() {
    let dev = Device::Cpu;
    // 5,000 elements: more than one chunk, and a partial last one.
    let a = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (2, 2500), &dev).unwrap() * 4.0).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 2500), &dev).unwrap()).unwrap();
    let weights = Tensor::randn(0f32, 1.0, (2, 2500), &dev).unwrap();
    let fused = swiglu(&a, &b).unwrap();
    let plain = (candle_nn::ops::silu(&a).unwrap() * b.as_tensor()).unwrap();
    close(&fused, &plain, 1e-5);
    same_gradients(&fused, &plain, &weights, &[&a, &b], 1e-4);
}

#[test]
fn swiglu_by_hand() {
    // silu(2) · 3 = 2 · 0.880797 · 3 = 5.284782; silu(0) · 7 = 0.
    let dev = Device::Cpu;
    let y = swiglu(&Tensor::new(&[2f32, 0.0], &dev).unwrap(), &Tensor::new(&[3f32, 7.0], &dev).unwrap()).unwrap();
    let y = y.to_vec1::<f32>().unwrap();
    assert!((y[0] - 5.284782).abs() < 1e-5 && y[1] == 0.0, "{y:?}");
}

#[test]
fn target_logprobs_by_hand() {
    // Logits [0, ln 3]: softmax [1/4, 3/4]; target 1 → ln 3/4 = −0.287682, and ∂z = 1[j = 1] − p
    // = [−0.25, 0.25].
    let dev = Device::Cpu;
    let z = Var::from_tensor(&Tensor::new(&[[0f32, 3f32.ln()]], &dev).unwrap()).unwrap();
    let lp = target_logprobs(&z, &Tensor::new(&[1u32], &dev).unwrap(), 1.0).unwrap();
    assert!((lp.to_vec1::<f32>().unwrap()[0] + 0.287682).abs() < 1e-5);
    let dz = lp.sum_all().unwrap().backward().unwrap().get(z.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    assert!((dz[0][0] + 0.25).abs() < 1e-6 && (dz[0][1] - 0.25).abs() < 1e-6, "{dz:?}");
}

#[test]
fn target_logprobs_and_gradients_match_log_softmax_at_a_temperature() {
    let dev = Device::Cpu;
    let z = Var::from_tensor(&(Tensor::randn(0f32, 1.0, (5, 300), &dev).unwrap() * 3.0).unwrap()).unwrap();
    let targets = Tensor::new(&[0u32, 299, 17, 17, 150], &dev).unwrap();
    let weights = Tensor::randn(0f32, 1.0, 5, &dev).unwrap();
    let fused = target_logprobs(&z, &targets, 0.7).unwrap();
    let plain = candle_nn::ops::log_softmax(&(z.as_tensor() / 0.7).unwrap(), 1)
        .unwrap()
        .gather(&targets.unsqueeze(1).unwrap(), 1)
        .unwrap()
        .squeeze(1)
        .unwrap();
    close(&fused, &plain, 1e-5);
    same_gradients(&fused, &plain, &weights, &[&z], 1e-5);
}

#[test]
fn target_logprobs_refuse_targets_outside_the_vocabulary_or_miscounted() {
    let dev = Device::Cpu;
    let z = Tensor::zeros((2, 4), candle_core::DType::F32, &dev).unwrap();
    assert!(target_logprobs(&z, &Tensor::new(&[0u32, 4], &dev).unwrap(), 1.0).is_err());
    assert!(target_logprobs(&z, &Tensor::new(&[0u32], &dev).unwrap(), 1.0).is_err());
}
