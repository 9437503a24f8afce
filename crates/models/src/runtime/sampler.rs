//! Choosing the next token from one row of logits: temperature, top-k, top-p, greedy, and the
//! log-probabilities reported with each token. Pure functions over slices; the RNG is passed in
//! so that a seed fixes the result.
//!
//! The reported log-prob is `log softmax(logits / T)[token]` (T = 1 when greedy), the
//! distribution the token was drawn from before truncation — what RL ratios are computed
//! against. Teacher-forced scoring uses the same formula, so the two agree.

use rand::Rng;

/// Effective temperature for log-probs: greedy decoding (T ≤ 0) reports the untempered
/// distribution (T = 1). The one rule for the runtime and the trainable model alike.
pub fn logprob_temperature(temperature: f32) -> f32 {
    if is_greedy(temperature) {
        1.0
    } else {
        temperature
    }
}

/// Whether a temperature means greedy decoding: `T ≤ 0` (NaN too). The one rule for choosing
/// the argmax (`Stream`) and for untempered log-probs (`logprob_temperature`).
pub fn is_greedy(temperature: f32) -> bool {
    !(temperature > 0.0)
}

/// `log softmax(logits / T)`, computed stably: `x_i/T − max − log Σ_j exp(x_j/T − max)`.
pub fn log_softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let inv_t = 1.0 / temperature;
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x * inv_t));
    let sum: f64 = logits.iter().map(|&x| ((x * inv_t - max) as f64).exp()).sum();
    let log_z = max + sum.ln() as f32;
    logits.iter().map(|&x| x * inv_t - log_z).collect()
}

/// Index of the largest value (the first one on ties).
pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// The `k` most likely tokens, most likely first (ties by lower id).
pub fn top_k(logprobs: &[f32], k: usize) -> Vec<(u32, f32)> {
    let k = k.min(logprobs.len());
    if k == 0 {
        return Vec::new();
    }
    let mut idx: Vec<u32> = (0..logprobs.len() as u32).collect();
    let cmp = |a: &u32, b: &u32| logprobs[*b as usize].total_cmp(&logprobs[*a as usize]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, logprobs[i as usize])).collect()
}

/// Entropy of a distribution given as log-probs: `H = −Σ_v exp(lp_v) · lp_v` (nats).
pub fn entropy(logprobs: &[f32]) -> f32 {
    -logprobs.iter().filter(|lp| lp.is_finite()).map(|&lp| lp.exp() * lp).sum::<f32>()
}

/// Draws a token from `logprobs` (already tempered), restricted to the `top_k` most likely
/// (0 = all) and then to the smallest set whose probability reaches `top_p` (nucleus).
pub fn sample_token<R: Rng>(logprobs: &[f32], top_k_n: usize, top_p: f32, rng: &mut R) -> u32 {
    let full = top_k_n == 0 || top_k_n >= logprobs.len();
    if full && top_p >= 1.0 {
        // Plain categorical draw over the whole vocabulary, no sort.
        let r: f64 = rng.random::<f64>();
        let mut acc = 0.0f64;
        for (i, &lp) in logprobs.iter().enumerate() {
            acc += (lp as f64).exp();
            if r < acc {
                return i as u32;
            }
        }
        return argmax(logprobs);
    }
    let mut cands = if full { nucleus_candidates(logprobs, top_p) } else { top_k(logprobs, top_k_n) };
    if top_p < 1.0 {
        let total: f64 = cands.iter().map(|(_, lp)| (*lp as f64).exp()).sum();
        let mut acc = 0.0f64;
        let mut keep = cands.len();
        for (n, (_, lp)) in cands.iter().enumerate() {
            acc += (*lp as f64).exp() / total;
            if acc >= top_p as f64 {
                keep = n + 1;
                break;
            }
        }
        cands.truncate(keep);
    }
    let total: f64 = cands.iter().map(|(_, lp)| (*lp as f64).exp()).sum();
    let r = rng.random::<f64>() * total;
    let mut acc = 0.0f64;
    for (id, lp) in &cands {
        acc += (*lp as f64).exp();
        if r < acc {
            return *id;
        }
    }
    cands.last().map(|c| c.0).unwrap_or_else(|| argmax(logprobs))
}

/// The tokens a nucleus of mass `top_p` can contain, sorted by probability: tokens below
/// 1e-6 are dropped first (a vocabulary-wide sort per token is the slow part), unless the
/// rest does not reach `top_p`.
fn nucleus_candidates(logprobs: &[f32], top_p: f32) -> Vec<(u32, f32)> {
    let floor = (1e-6f32).ln();
    let mut c: Vec<(u32, f32)> =
        logprobs.iter().enumerate().filter(|(_, &lp)| lp > floor).map(|(i, &lp)| (i as u32, lp)).collect();
    let mass: f64 = c.iter().map(|(_, lp)| (*lp as f64).exp()).sum();
    if mass < top_p as f64 {
        c = logprobs.iter().enumerate().map(|(i, &lp)| (i as u32, lp)).collect();
    }
    c.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn entropy_by_hand() {
        // p = 1/2, 1/4, 1/4: H = ½·ln 2 + 2·¼·ln 4 = 1.5·ln 2 = 1.039721; a certain token: 0;
        // a zero-probability token (−∞) adds nothing.
        let h = entropy(&[0.5f32.ln(), 0.25f32.ln(), 0.25f32.ln(), f32::NEG_INFINITY]);
        assert!((h - 1.039721).abs() < 1e-5, "{h}");
        assert_eq!(entropy(&[0.0]), 0.0);
    }

    #[test]
    fn log_softmax_matches_hand_computation() {
        // logits [1, 2, 3]: log Z = ln(e + e^2 + e^3) = 3.40760596
        let lp = log_softmax(&[1.0, 2.0, 3.0], 1.0);
        assert!((lp[0] - (1.0 - 3.407606)).abs() < 1e-5);
        assert!((lp[2] - (3.0 - 3.407606)).abs() < 1e-5);
        // T = 2 halves the logits: [0.5, 1, 1.5], log Z = ln(1.648721 + 2.718282 + 4.481689) = 2.180261
        let lp = log_softmax(&[1.0, 2.0, 3.0], 2.0);
        assert!((lp[1] - (1.0 - 2.180261)).abs() < 1e-5);
        let total: f32 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
    }

    #[test]
    fn greedy_and_top_k() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, 0.2]), 1);
        let tk = top_k(&[-3.0, -0.5, -1.0, -0.5], 3);
        assert_eq!(tk.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3, 2]);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_tiny_is_greedy() {
        let lp = log_softmax(&[0.0, 3.0, 1.0, 2.9], 1.0);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..50 {
            assert_eq!(sample_token(&lp, 1, 1.0, &mut rng), 1);
            assert_eq!(sample_token(&lp, 0, 0.01, &mut rng), 1);
        }
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        // probabilities 0.5, 0.3, 0.2: top_p = 0.7 keeps {0, 1}; token 2 is never drawn.
        let lp: Vec<f32> = [0.5f32, 0.3, 0.2].iter().map(|p| p.ln()).collect();
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            counts[sample_token(&lp, 0, 0.7, &mut rng) as usize] += 1;
        }
        assert_eq!(counts[2], 0);
        let share0 = counts[0] as f64 / 4000.0; // expected 0.5 / 0.8 = 0.625
        assert!((share0 - 0.625).abs() < 0.03, "{share0}");
    }

    #[test]
    fn full_sampling_follows_the_distribution_and_the_seed() {
        let lp: Vec<f32> = [0.1f32, 0.6, 0.3].iter().map(|p| p.ln()).collect();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..3000).map(|_| sample_token(&lp, 0, 1.0, &mut rng)).collect::<Vec<_>>()
        };
        let a = draw(3);
        assert_eq!(a, draw(3));
        assert_ne!(a, draw(4));
        let share1 = a.iter().filter(|&&t| t == 1).count() as f64 / 3000.0;
        assert!((share1 - 0.6).abs() < 0.03, "{share1}");
    }
}
