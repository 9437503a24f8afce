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
#[path = "metrics_tests.rs"]
mod tests;
