//! AXPO (`METHODS.md` §3): when a task's tool-using rollouts all failed, resample their tool
//! calls from fixed prefixes and credit the prefix if any resample succeeds.
//!
//! Pipeline per task, after the normal group of `G` rollouts: `triggered` → for each failed
//! tool-using rollout its `prefix_end` (thinking text up to and including the opening
//! `<tool_call>` tag) and the `call_confidence` of its failed call → `select_prefixes` (least
//! confident first, under the rollout budget) → `K` continuations per prefix →
//! `separated_advantages`, applied through `prefix_only` / `continuation_only` masks.

use crate::advantages::grpo;

/// A reward above this counts as a success (rewards are 0/1 in kaizen's envs).
pub const SUCCESS: f32 = 0.5;

/// One rollout of a task's group, as AXPO sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutView {
    pub reward: f32,
    pub used_tool: bool,
}

/// AXPO triggers on a task whose tool-using subgroup is non-empty and all wrong.
pub fn triggered(group: &[RolloutView]) -> bool {
    let mut tools = group.iter().filter(|r| r.used_tool).peekable();
    tools.peek().is_some() && tools.all(|r| r.reward <= SUCCESS)
}

/// Index just after the token that completes the first `open` tag (`<tool_call>`) in the
/// model-written text, or `None` if the model never opened a call. `token_texts[i]` is token
/// i's text; `mask[i]` is 1 on model-written tokens. The tag is searched within each run of
/// model-written tokens (a turn), never across an observation.
pub fn prefix_end(token_texts: &[&str], mask: &[u8], open: &str) -> Option<usize> {
    let mut turn = String::new();
    for (i, (text, &m)) in token_texts.iter().zip(mask).enumerate() {
        if m == 0 {
            turn.clear();
            continue;
        }
        turn.push_str(text);
        if turn.contains(open) {
            return Some(i + 1);
        }
    }
    None
}

/// The tokens of the tool call that follows a prefix: from `prefix_end` to the end of that
/// model-written run (generation stops at the closing tag).
pub fn call_span(mask: &[u8], prefix_end: usize) -> std::ops::Range<usize> {
    let end = (prefix_end..mask.len()).find(|&i| mask[i] == 0).unwrap_or(mask.len());
    prefix_end..end
}

/// Confidence of a tool call: the mean probability of its tokens,
/// `c = (1/|T|) Σ_{t∈T} exp(log π(y_t | ·))`. Lower means the policy was less sure — those
/// prefixes are resampled first. An empty call has confidence 1 (nothing to resample).
pub fn call_confidence(logprobs: &[f32]) -> f32 {
    if logprobs.is_empty() {
        return 1.0;
    }
    logprobs.iter().map(|lp| lp.exp()).sum::<f32>() / logprobs.len() as f32
}

/// Which prefixes to resample: the least confident first, as many as the budget pays for —
/// `⌊budget / K⌋` prefixes of `K` continuations each. `candidates` are (rollout index,
/// confidence); ties keep their order.
pub fn select_prefixes(candidates: &[(usize, f32)], budget_rollouts: usize, k: usize) -> Vec<usize> {
    let mut sorted = candidates.to_vec();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
    sorted.into_iter().take(budget_rollouts / k.max(1)).map(|(i, _)| i).collect()
}

/// The `K` continuations resampled from one source rollout's prefix, with their rewards.
#[derive(Debug, Clone, PartialEq)]
pub struct Resampled {
    pub source: usize,
    pub rewards: Vec<f32>,
}

/// AXPO's separated advantages.
#[derive(Debug, Clone, PartialEq)]
pub struct AxpoAdvantages {
    /// Per resampled prefix, one advantage per continuation, for continuation tokens only:
    /// `Â_k = (r_k − mean_K r) / (std_K r + ε)`.
    pub continuations: Vec<Vec<f32>>,
    /// One per rollout of the original group after prefix credit: a source's reward becomes
    /// `r_prefix = 1[any r_k = 1]` and the group is re-normalised (GRPO). For a source it
    /// applies to its prefix tokens only; for the others, to all their tokens as usual.
    pub group: Vec<f32>,
}

pub fn separated_advantages(group_rewards: &[f32], resampled: &[Resampled], eps: f32) -> AxpoAdvantages {
    let continuations = resampled.iter().map(|r| grpo(&r.rewards, eps)).collect();
    let mut credited = group_rewards.to_vec();
    for r in resampled {
        if let Some(x) = credited.get_mut(r.source) {
            *x = if r.rewards.iter().any(|&v| v > SUCCESS) { 1.0 } else { 0.0 };
        }
    }
    AxpoAdvantages { continuations, group: grpo(&credited, eps) }
}

/// The loss mask of a source rollout under prefix credit: its prefix only, its old
/// continuation masked.
pub fn prefix_only(mask: &[u8], prefix_end: usize) -> Vec<u8> {
    mask.iter().enumerate().map(|(i, &m)| if i < prefix_end { m } else { 0 }).collect()
}

/// The loss mask of a resampled continuation: the shared prefix masked.
pub fn continuation_only(mask: &[u8], prefix_end: usize) -> Vec<u8> {
    mask.iter().enumerate().map(|(i, &m)| if i >= prefix_end { m } else { 0 }).collect()
}

#[cfg(test)]
#[path = "axpo_tests.rs"]
mod tests;
