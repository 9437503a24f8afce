//! AXPO (`METHODS.md` §3): when a task's tool-using rollouts all failed, resample their tool
//! calls from fixed prefixes and credit the prefix if any resample succeeds.
//!
//! Pipeline per task, after the normal group of `G` rollouts: `triggered` → for each failed
//! tool-using rollout, its least confident well-formed call (`call_openings`,
//! `call_confidence`), and the prefix up to and including that call's opening `<tool_call>`
//! tag → `select_prefixes` (breadth-first over tasks, least confident first, under the rollout
//! budget) → `K` continuations per prefix → `separated_advantages`, applied through
//! `prefix_only` / `continuation_only` masks. A malformed call is not tool use: it neither
//! triggers AXPO nor is resampled.

use crate::advantages::grpo;
use kaizen_core::trajectory::is_success;

/// One rollout of a task's group, as AXPO sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutView {
    pub reward: f32,
    pub used_tool: bool,
}

/// AXPO triggers on a task whose tool-using subgroup is non-empty and all wrong.
pub fn triggered(group: &[RolloutView]) -> bool {
    let mut tools = group.iter().filter(|r| r.used_tool).peekable();
    tools.peek().is_some() && tools.all(|r| !is_success(r.reward))
}

/// Index just after the token that completes the first `open` tag (`<tool_call>`) in the
/// model-written text, or `None` if the model never opened a call. `token_texts[i]` is token
/// i's text; `mask[i]` is 1 on model-written tokens. The tag is searched within each run of
/// model-written tokens (a turn), never across an observation.
pub fn prefix_end(token_texts: &[&str], mask: &[u8], open: &str) -> Option<usize> {
    call_openings(token_texts, mask, open).first().map(|c| c.prefix_end)
}

/// One opening tag the model wrote: which model-written run (turn, counted from 0) it is in,
/// and the index just after the token that completes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallOpening {
    pub turn: usize,
    pub prefix_end: usize,
}

/// Every `open` tag in the model-written runs, in order (several calls in one turn included).
pub fn call_openings(token_texts: &[&str], mask: &[u8], open: &str) -> Vec<CallOpening> {
    let mut out = Vec::new();
    let (mut turn, mut in_run, mut text, mut seen) = (0usize, false, String::new(), 0usize);
    for (i, (t, &m)) in token_texts.iter().zip(mask).enumerate() {
        if m == 0 {
            if in_run {
                turn += 1;
            }
            (in_run, seen) = (false, 0);
            text.clear();
            continue;
        }
        in_run = true;
        text.push_str(t);
        let count = text.matches(open).count();
        if count > seen {
            seen = count;
            out.push(CallOpening { turn, prefix_end: i + 1 });
        }
    }
    out
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

/// Which prefixes to resample, as many as the budget pays for (`⌊budget / K⌋` prefixes of
/// `K` continuations each), allocated breadth-first as the paper does: one prefix per
/// triggered task in order of uncertainty, then a second round, until the budget is spent —
/// one task cannot take it all. `candidates` are (task group, rollout index, confidence);
/// within a group and across a round the least confident go first; ties keep their order.
pub fn select_prefixes(candidates: &[(usize, usize, f32)], budget_rollouts: usize, k: usize) -> Vec<usize> {
    let mut groups: std::collections::BTreeMap<usize, Vec<(usize, f32)>> = Default::default();
    for &(g, i, c) in candidates {
        groups.entry(g).or_default().push((i, c));
    }
    let mut queues: Vec<Vec<(usize, f32)>> = groups.into_values().collect();
    for q in &mut queues {
        q.sort_by(|a, b| a.1.total_cmp(&b.1));
    }
    let wanted = budget_rollouts / k.max(1);
    let mut out = Vec::new();
    for round in 0.. {
        let mut this: Vec<(usize, f32)> = queues.iter().filter_map(|q| q.get(round).copied()).collect();
        if this.is_empty() || out.len() >= wanted {
            break;
        }
        this.sort_by(|a, b| a.1.total_cmp(&b.1));
        out.extend(this.into_iter().map(|(i, _)| i).take(wanted - out.len()));
    }
    out
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
            *x = if r.rewards.iter().any(|&v| is_success(v)) { 1.0 } else { 0.0 };
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
