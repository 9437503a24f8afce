//! How well a Q-function ranks: success-prediction AUC and top-1 ranking accuracy.

/// Area under the ROC curve of `scores` predicting `labels` (true = success), by the
/// Mann–Whitney statistic: the share of (success, failure) pairs in which the success scores
/// higher, ties counting one half. `None` when either class is missing.
pub fn auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    let pos: Vec<f32> = scores.iter().zip(labels).filter(|(_, &l)| l).map(|(&s, _)| s).collect();
    let neg: Vec<f32> = scores.iter().zip(labels).filter(|(_, &l)| !l).map(|(&s, _)| s).collect();
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut wins = 0.0f64;
    for p in &pos {
        for n in &neg {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    Some(wins / (pos.len() * neg.len()) as f64)
}

/// Top-1 ranking accuracy: over states whose logged actions have both outcomes, the share in
/// which the highest-scored action is a successful one. Each group is `(score, success)` for
/// the actions taken from one state. `None` when no group has both outcomes.
pub fn top1_accuracy(groups: &[Vec<(f32, bool)>]) -> Option<f64> {
    let mixed = mixed_groups(groups);
    if mixed.is_empty() {
        return None;
    }
    let hits = mixed.iter().filter(|g| g.iter().max_by(|a, b| a.0.total_cmp(&b.0)).is_some_and(|best| best.1)).count();
    Some(hits as f64 / mixed.len() as f64)
}

/// The groups whose actions have both outcomes: the only ones top-1 accuracy can be computed
/// over (a figure over few of them says little; report their number with it).
pub fn mixed_groups(groups: &[Vec<(f32, bool)>]) -> Vec<&Vec<(f32, bool)>> {
    groups.iter().filter(|g| g.iter().any(|x| x.1) && g.iter().any(|x| !x.1)).collect()
}

/// Wilson score interval for a success rate `k / n` at `z` (1.96 for 95%):
/// `(p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`. Stays inside [0, 1] and is sound at
/// 0 or n successes, unlike the normal approximation.
pub fn wilson_interval(k: usize, n: usize, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let d = 1.0 + z2 / n;
    (((centre - half) / d).max(0.0), ((centre + half) / d).min(1.0))
}

/// Bootstrap resamples of `paired_difference` (fixed, so a table is the same every time).
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// The paired difference of two success rates on the same tasks, `d̄ = mean(a_i − b_i)`, with
/// its 95% paired-bootstrap percentile interval: the tasks are resampled with replacement
/// `BOOTSTRAP_RESAMPLES` times (seeded, so deterministic), each resample's mean difference
/// taken, and the 2.5th and 97.5th percentiles of those means reported. Paired, so a method that
/// wins on most tasks shows it even where the two rates' own intervals overlap. `None` for
/// fewer than 2 tasks or slices of different lengths.
pub fn paired_difference(a: &[bool], b: &[bool]) -> Option<(f64, f64, f64)> {
    use rand::{Rng, SeedableRng};
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(&x, &y)| x as u8 as f64 - y as u8 as f64).collect();
    let n = d.len();
    let mean = d.iter().sum::<f64>() / n as f64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED_B007);
    let mut means: Vec<f64> =
        (0..BOOTSTRAP_RESAMPLES).map(|_| (0..n).map(|_| d[rng.random_range(0..n)]).sum::<f64>() / n as f64).collect();
    means.sort_by(f64::total_cmp);
    // Nearest rank: the q-quantile of B sorted values is the ⌈q·B⌉-th (1-based).
    let at = |q: f64| means[((q * BOOTSTRAP_RESAMPLES as f64).ceil() as usize).clamp(1, BOOTSTRAP_RESAMPLES) - 1];
    Some((mean, at(0.025), at(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_difference_is_a_bootstrap_interval_matching_hand_computed_quantiles() {
        // d = 1,0,1,0 (a = 1,1,1,0; b = 0,1,0,0): a resample's mean is k/4, k ~ Bin(4, 1/2);
        // P(k = 0) = P(k = 4) = 1/16 > 2.5%, so the percentiles are 0 and 1; d̄ = 0.5.
        let (m, lo, hi) = paired_difference(&[true, true, true, false], &[false, true, false, false]).unwrap();
        assert_eq!((m, lo, hi), (0.5, 0.0, 1.0));
        // Nine wins in ten: k ~ Bin(10, 0.9); P(k ≤ 6) = 0.0128 < 2.5% < P(k ≤ 7) = 0.0702, so the
        // 2.5th percentile is 0.7; P(k = 10) = 0.349, so the 97.5th is 1.0.
        let a = [true; 10];
        let mut b = [false; 10];
        b[3] = true;
        let (m, lo, hi) = paired_difference(&a, &b).unwrap();
        assert!((m - 0.9).abs() < 1e-12 && (lo - 0.7).abs() < 1e-12 && hi == 1.0, "{m} {lo} {hi}");
        // Identical outcomes: no difference, no spread; the same input, the same interval.
        assert_eq!(paired_difference(&[true, false, true], &[true, false, true]), Some((0.0, 0.0, 0.0)));
        assert_eq!(paired_difference(&a, &b), paired_difference(&a, &b));
        assert_eq!(paired_difference(&[true], &[false]), None);
    }

    #[test]
    fn wilson_by_hand() {
        // 8 of 10 at z = 1.96: (0.8 + 0.19208 ± 1.96·√(0.016 + 0.0009604)) / 1.38416 = (0.4902, 0.9433).
        let (lo, hi) = wilson_interval(8, 10, 1.96);
        assert!((lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3, "{lo} {hi}");
        let (lo, hi) = wilson_interval(0, 20, 1.96);
        assert!(lo == 0.0 && (hi - 0.1611).abs() < 1e-3, "{hi}");
        assert_eq!(wilson_interval(0, 0, 1.96), (0.0, 1.0));
    }

    #[test]
    fn auc_by_hand() {
        // Successes 0.9, 0.4; failures 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4.
        assert_eq!(auc(&[0.9, 0.5, 0.4, 0.1], &[true, false, true, false]), Some(0.75));
        assert_eq!(auc(&[0.3, 0.3], &[true, false]), Some(0.5));
        assert_eq!(auc(&[0.3], &[true]), None);
    }

    #[test]
    fn top1_counts_only_states_with_both_outcomes() {
        let groups = vec![
            vec![(0.9, true), (0.2, false)],               // right
            vec![(0.1, true), (0.6, false)],               // wrong
            vec![(0.5, true), (0.4, true)],                // one outcome: skipped
            vec![(0.3, false), (0.8, true), (0.1, false)], // right
        ];
        assert_eq!(top1_accuracy(&groups), Some(2.0 / 3.0));
        assert_eq!(top1_accuracy(&groups[2..3]), None);
    }
}
