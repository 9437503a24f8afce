//! Unit tests of `loss`: hand-computed values and a finite-difference gradient check.

use super::*;
use candle_core::{Device, Var};

fn t(rows: &[&[f64]]) -> Tensor {
    let b = rows.len();
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, (b, rows[0].len()), &Device::Cpu).unwrap()
}

fn scalar(x: &Tensor) -> f64 {
    x.to_scalar::<f64>().unwrap()
}

#[test]
fn clip_by_hand() {
    // old = 0 so ρ = exp(logp). Tokens: ρ = 1.5, A = +1 → clipped to 1.4 (binds): −1.4;
    // ρ = 0.5, A = +1 → min(0.5, 0.8) = 0.5: −0.5; ρ = 0.5, A = −1 → min(−0.5, −0.8) = −0.8
    // (binds): +0.8; the 4th token is masked. Token mean = (−1.4 − 0.5 + 0.8) / 3.
    let logp = t(&[&[1.5f64.ln(), 0.5f64.ln(), 0.5f64.ln(), 3.0]]);
    let zeros = logp.zeros_like().unwrap();
    let adv = t(&[&[1., 1., -1., 5.]]);
    let mask = t(&[&[1., 1., 1., 0.]]);
    let cfg = PpoConfig { beta: 0.0, ..Default::default() };
    let (loss, stats) = ppo_loss(&logp, &zeros, None, &adv, &mask, None, &cfg).unwrap();
    assert!((scalar(&loss) - (-1.1 / 3.0)).abs() < 1e-7, "{}", scalar(&loss));
    assert!((stats.clip_fraction - 2.0 / 3.0).abs() < 1e-6);
    assert!((stats.ratio - (1.5 + 0.5 + 0.5) / 3.0).abs() < 1e-6);
    // ADPO: a per-row ε_high of 0.6 lets ρ = 1.5 through unclipped: (−1.5 − 0.5 + 0.8) / 3.
    let rows = Tensor::new(&[[0.6f64]], &Device::Cpu).unwrap();
    let (loss, _) = ppo_loss(&logp, &zeros, None, &adv, &mask, Some(&rows), &cfg).unwrap();
    assert!((scalar(&loss) - (-1.2 / 3.0)).abs() < 1e-7);
}

#[test]
fn k3_kl_and_normalisations_by_hand() {
    // ρ = 1 (logp = old), A = 0: only the KL term. ref = 0, logp = ln 0.5 → ref − logp = ln 2,
    // k3 = 2 − ln 2 − 1 = 0.306853.
    let logp = t(&[&[0.5f64.ln(), 0.5f64.ln()], &[0.5f64.ln(), 0.5f64.ln()]]);
    let reference = logp.zeros_like().unwrap();
    let adv = logp.zeros_like().unwrap();
    let k3 = 2.0 - 2f64.ln() - 1.0;
    let mask = t(&[&[1., 1.], &[1., 0.]]);
    let cfg = |normalisation| PpoConfig { beta: 1.0, normalisation, ..Default::default() };
    let run = |c| ppo_loss(&logp, &logp, Some(&reference), &adv, &mask, None, &c).unwrap();
    let (loss, stats) = run(cfg(Normalisation::TokenMean));
    assert!((scalar(&loss) - k3).abs() < 1e-9);
    assert!((stats.kl as f64 - k3).abs() < 1e-6);
    // Sequence mean: both sequences average k3 → k3. Constant L = 4: 3·k3 / (2·4).
    assert!((scalar(&run(cfg(Normalisation::SequenceMean)).0) - k3).abs() < 1e-9);
    assert!((scalar(&run(cfg(Normalisation::Constant(4.0))).0) - 3.0 * k3 / 8.0).abs() < 1e-9);
    // β > 0 without a reference is an error, not a silent zero.
    assert!(ppo_loss(&logp, &logp, None, &adv, &mask, None, &cfg(Normalisation::TokenMean)).is_err());
}

#[test]
fn gradient_matches_finite_differences() {
    // Points away from the clip boundaries (where the loss has kinks).
    let base = [[-1.2, -0.3, -2.0], [-0.7, -1.9, -0.05]];
    let old = t(&[&[-1.0, -0.5, -2.1], &[-0.9, -1.0, -0.1]]);
    let reference = t(&[&[-1.1, -0.4, -1.5], &[-0.8, -1.2, -0.3]]);
    let adv = t(&[&[0.8, -1.3, 0.4], &[-0.6, 1.1, 2.0]]);
    let mask = t(&[&[1., 1., 0.], &[1., 1., 1.]]);
    for normalisation in [Normalisation::TokenMean, Normalisation::SequenceMean, Normalisation::Constant(3.0)] {
        let cfg = PpoConfig { beta: 0.1, normalisation, ..Default::default() };
        let loss_at = |x: &Tensor| scalar(&ppo_loss(x, &old, Some(&reference), &adv, &mask, None, &cfg).unwrap().0);
        let var = Var::from_tensor(&t(&[&base[0], &base[1]])).unwrap();
        let (loss, _) = ppo_loss(var.as_tensor(), &old, Some(&reference), &adv, &mask, None, &cfg).unwrap();
        let grads = loss.backward().unwrap();
        let g = grads.get(var.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        let h = 1e-6;
        for b in 0..2 {
            for j in 0..3 {
                let mut plus = base;
                let mut minus = base;
                plus[b][j] += h;
                minus[b][j] -= h;
                let numeric = (loss_at(&t(&[&plus[0], &plus[1]])) - loss_at(&t(&[&minus[0], &minus[1]]))) / (2.0 * h);
                assert!(
                    (numeric - g[b][j]).abs() < 1e-6,
                    "{normalisation:?} [{b}][{j}]: autograd {} vs numeric {numeric}",
                    g[b][j]
                );
            }
        }
        // A masked token gets no gradient.
        assert_eq!(g[0][2], 0.0);
    }
}
