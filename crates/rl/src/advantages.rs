//! Group-relative advantages: every response token of rollout `i` gets `Â_i`, computed from
//! the rewards of the `G` rollouts of the same task. The formulas; which name runs which is in
//! `estimator`.

/// Mean and sample standard deviation (`n − 1` in the denominator, as `torch.std`; 0 for
/// fewer than two values).
pub fn mean_std(xs: &[f32]) -> (f32, f32) {
    let n = xs.len();
    if n == 0 {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f32>() / n as f32;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / (n - 1) as f32;
    (mean, var.sqrt())
}

/// GRPO: `Â_i = (r_i − mean(r)) / (std(r) + ε)`. A group whose rewards are all equal gets
/// zero advantage (it carries no signal).
pub fn grpo(rewards: &[f32], eps: f32) -> Vec<f32> {
    let (mean, std) = mean_std(rewards);
    rewards.iter().map(|r| (r - mean) / (std + eps)).collect()
}

/// Dr.GRPO: `Â_i = r_i − mean(r)` — no division by the group's std (which over-weights groups
/// that are nearly all right or all wrong). Its loss also drops per-sequence length
/// normalisation: see `loss::Normalisation::Constant`.
pub fn dr_grpo(rewards: &[f32]) -> Vec<f32> {
    let (mean, _) = mean_std(rewards);
    rewards.iter().map(|r| r - mean).collect()
}

/// ADPO advantage scale for a task whose pseudo-label has self-consistency `p̂`:
/// `s(p̂) = m + (1 − m) · clamp((p̂ − 0.3) / 0.5, 0, 1)`, `m = 0.6` by default — ambiguous
/// labels (low `p̂`) are trusted less. `Ã = Â · s(p̂)`.
pub fn adpo_scale(p_hat: f32, m: f32) -> f32 {
    m + (1.0 - m) * ((p_hat - 0.3) / 0.5).clamp(0.0, 1.0)
}

/// ADPO upper clip bound: `ε_high(p̂) = ε + 0.1 · clamp((0.8 − p̂) / 0.5, 0, 1)` — hard tasks
/// may move the policy further. The lower bound is unchanged. The trainer passes the recipe's
/// `rl.eps_high` as `ε`: the paper's symmetric PPO ε when that equals `rl.eps_low` (as in
/// `kaizen evolve`'s executor defaults, 0.2), a clip-higher base otherwise.
pub fn adpo_eps_high(p_hat: f32, eps: f32) -> f32 {
    eps + 0.1 * ((0.8 - p_hat) / 0.5).clamp(0.0, 1.0)
}

/// The distinct answers among `answers` with how many samples gave each, in order of first
/// appearance. Answers are the same when `same(a, b)` says so — the env's checker, so "1,234"
/// and "1234.0" are one answer under a numeric checker; each answer joins the first answer
/// seen that it equals. Samples without an answer are not counted.
pub fn answer_counts(answers: &[Option<String>], same: impl Fn(&str, &str) -> bool) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for a in answers.iter().flatten() {
        match counts.iter_mut().find(|(x, _)| same(a, x)) {
            Some((_, c)) => *c += 1,
            None => counts.push((a.clone(), 1)),
        }
    }
    counts
}

/// Self-consistency of a task's sampled answers: the majority answer and `p̂`, its share of
/// all `k` samples (a sample without an answer counts against it), with answers grouped as
/// `answer_counts` groups them; ties go to the answer seen first. `None` when no sample
/// answered.
pub fn self_consistency(answers: &[Option<String>], same: impl Fn(&str, &str) -> bool) -> Option<(String, f32)> {
    let counts = answer_counts(answers, same);
    let (best, c) = counts.iter().fold(None::<(&str, usize)>, |acc, (a, c)| match acc {
        Some((_, bc)) if bc >= *c => acc,
        _ => Some((a.as_str(), *c)),
    })?;
    Some((best.to_string(), c as f32 / answers.len() as f32))
}

#[cfg(test)]
#[path = "advantages_tests.rs"]
mod tests;
