//! Unit tests of `batch` (kept in their own file beside it).

use super::*;

#[test]
fn pads_and_shifts_the_mask_by_hand() {
    let a: (&[u32], &[u8]) = (&[7, 8, 9], &[0, 1, 1]);
    let b: (&[u32], &[u8]) = (&[5, 6], &[0, 1]);
    let adv = vec![vec![vec![0., 2., 2.], vec![0., -1.]]];
    let batch = TokenBatch::new(&[a, b], &adv, 0, &Device::Cpu).unwrap();
    assert_eq!(batch.ids.to_vec2::<u32>().unwrap(), vec![vec![7, 8, 9], vec![5, 6, 0]]);
    // Position t predicts token t + 1.
    assert_eq!(batch.mask.to_vec2::<f32>().unwrap(), vec![vec![1., 1.], vec![1., 0.]]);
    assert_eq!(batch.values[0].to_vec2::<f32>().unwrap(), vec![vec![2., 2.], vec![-1., 0.]]);
    assert_eq!(batch.shared, 0, "the rows differ from the first token");
    // Shared up to the first written token of any row.
    let c: (&[u32], &[u8]) = (&[1, 2, 3, 4, 5], &[0, 0, 0, 1, 1]);
    let d: (&[u32], &[u8]) = (&[1, 2, 3, 9], &[0, 0, 1, 1]);
    assert_eq!(TokenBatch::new(&[c, d], &[], 0, &Device::Cpu).unwrap().shared, 2);
    assert_eq!(TokenBatch::new(&[c, c], &[], 0, &Device::Cpu).unwrap().shared, 3);
    assert!(TokenBatch::new(&[(&[1, 2], &[0])], &[], 0, &Device::Cpu).is_err());
}

#[test]
fn sft_loss_by_hand() {
    // log-probs ln 0.5 and ln 0.25 on the two masked positions: (ln 2 + ln 4) / 2 = 1.0397.
    let logp = Tensor::new(&[[0.5f32.ln(), 0.25f32.ln(), -9.0]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1f32, 1.0, 0.0]], &Device::Cpu).unwrap();
    let l = sft_loss(&logp, &mask).unwrap().to_scalar::<f32>().unwrap();
    assert!((l - (2f32.ln() + 4f32.ln()) / 2.0).abs() < 1e-6, "{l}");
}
