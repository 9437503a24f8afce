//! AXPO's rollout stage (`METHODS.md` §3): finds the prefixes to resample in a step's groups,
//! runs K continuations from each through the episode engine, and turns everything into
//! training rows with separated advantages and their masks. The formulas are in `axpo`.

use crate::axpo::{
    call_confidence, call_openings, call_span, continuation_only, prefix_only, select_prefixes, separated_advantages,
    triggered, Resampled, RolloutView,
};
use crate::estimator::{Advantage, TrainRow};
use crate::recipe::Recipe;
use kaizen_core::tool_call::OPEN;
use kaizen_core::Trajectory;
use kaizen_models::LocalLlm;
use kaizen_rollout::Job;
use std::collections::{BTreeMap, HashMap};

/// A group's rollouts as AXPO and the diagnostics see them: reward, and whether the rollout
/// made a well-formed tool call (a malformed one is not tool use).
pub fn views_of(group: &[Trajectory]) -> Vec<RolloutView> {
    group.iter().map(|t| RolloutView { reward: t.reward, used_tool: t.used_tool() }).collect()
}

/// The prefix AXPO would resample in a failed rollout: up to and including the opening tag of
/// its least confident well-formed call, and that call's confidence. Turns with a malformed
/// call are passed over (which tag is which call is then unknown).
fn least_confident_call(llm: &LocalLlm, t: &Trajectory) -> Option<(usize, f32)> {
    let texts: Vec<String> = t.token_ids.iter().map(|&id| llm.tokenizer.token_text(id)).collect();
    least_confident_opening(&texts.iter().map(String::as_str).collect::<Vec<_>>(), t)
}

/// `least_confident_call` on the trajectory's token texts (one per token id): the prefix end
/// after the opening tag of the well-formed call whose tokens (to the next opening of the same
/// turn, or the turn's end) have the lowest `call_confidence`.
fn least_confident_opening(texts: &[&str], t: &Trajectory) -> Option<(usize, f32)> {
    let openings = call_openings(texts, &t.loss_mask, OPEN);
    openings
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            t.turns.get(o.turn).is_some_and(|turn| turn.malformed.is_empty() && !turn.tool_calls.is_empty())
        })
        .map(|(n, o)| {
            // The call's tokens: to the next opening in the same turn, or to the turn's end.
            let mut span = call_span(&t.loss_mask, o.prefix_end);
            if let Some(next) = openings.get(n + 1).filter(|next| next.turn == o.turn) {
                span.end = span.end.min(next.prefix_end);
            }
            (o.prefix_end, call_confidence(t.logprobs.get(span).unwrap_or(&[])))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resampling {
    pub triggered_groups: usize,
    pub prefixes: usize,
    pub recovered: usize,
}

/// AXPO for one RL step (`METHODS.md` §3). In each group whose tool-using rollouts all
/// failed, every failed tool call is a candidate prefix (its text up to and including
/// `<tool_call>`), ranked by the mean probability of its call's tokens; the least confident
/// are resampled, `K` continuations each, while the step's budget lasts
/// (`rl.axpo_budget` × the step's rollouts). Advantages are separated: continuations
/// against their own K, and each source's prefix with the group re-normalised after the
/// prefix is credited with the best of its continuations. Returns the resampled episodes and
/// the rows of every trajectory (original and resampled).
///
/// `resample` runs the continuation jobs (the trainer runs them through the batched engine)
/// and returns their episodes in any order.
pub fn axpo_rows(
    llm: &LocalLlm,
    rollouts: &[Trajectory],
    recipe: &Recipe,
    step: usize,
    resample: &mut dyn FnMut(Vec<Job>) -> Vec<Trajectory>,
) -> crate::Result<(Vec<Trajectory>, Vec<TrainRow>, Resampling)> {
    let (g, k, eps) = (recipe.rl.group, recipe.rl.axpo_k, recipe.rl.eps_high);
    let mut stats = Resampling::default();
    let mut candidates = Vec::new();
    let mut prefix_of = HashMap::new();
    for (gi, group) in rollouts.chunks(g).enumerate() {
        if !triggered(&views_of(group)) {
            continue;
        }
        stats.triggered_groups += 1;
        for (j, t) in group.iter().enumerate() {
            if !t.used_tool() || t.solved() {
                continue;
            }
            let Some((end, confidence)) = least_confident_call(llm, t) else { continue };
            candidates.push((gi, gi * g + j, confidence));
            prefix_of.insert(gi * g + j, end);
        }
    }
    let budget = (recipe.rl.axpo_budget * rollouts.len() as f64).round() as usize;
    let selected = select_prefixes(&candidates, budget, k);
    stats.prefixes = selected.len();
    // Each continuation's job id names its source, so results are grouped by id, not by order.
    let mut source_of = HashMap::new();
    let mut jobs = Vec::with_capacity(selected.len() * k);
    let mut ids = Vec::with_capacity(selected.len() * k);
    for &s in &selected {
        let source = std::sync::Arc::new(rollouts[s].clone());
        for r in 0..k {
            let seed = recipe.seed.wrapping_mul(7_000_003).wrapping_add((step * 100_000 + s * 100 + r) as u64);
            let id = format!("{}-r{r:02}", source.episode_id);
            source_of.insert(id.clone(), s);
            ids.push(id.clone());
            jobs.push(Job::continuing(source.clone(), prefix_of[&s], seed, id));
        }
    }
    // Source index → (its prefix end, its continuations in id order).
    let mut resamples: BTreeMap<usize, (usize, Vec<Trajectory>)> = BTreeMap::new();
    for t in resample(jobs) {
        if let Some(&s) = source_of.get(&t.episode_id) {
            resamples.entry(s).or_insert_with(|| (prefix_of[&s], Vec::new())).1.push(t);
        }
    }
    for (_, ts) in resamples.values_mut() {
        kaizen_rollout::in_job_order(ts, &ids);
    }
    // Rows index the rollouts, then the continuations in `resamples` order (as returned).
    let mut rows = Vec::with_capacity(rollouts.len() + selected.len() * k);
    let mut next = rollouts.len();
    for (gi, group) in rollouts.chunks(g).enumerate() {
        let in_group: Vec<(&usize, &(usize, Vec<Trajectory>))> = resamples.range(gi * g..(gi + 1) * g).collect();
        let resampled: Vec<Resampled> = in_group
            .iter()
            .map(|(&s, (_, ts))| Resampled { source: s - gi * g, rewards: ts.iter().map(|t| t.reward).collect() })
            .collect();
        let ax = separated_advantages(&group.iter().map(|t| t.reward).collect::<Vec<_>>(), &resampled, 1e-6);
        for (j, t) in group.iter().enumerate() {
            let mask = resamples.get(&(gi * g + j)).map(|(end, _)| prefix_only(&t.loss_mask, *end));
            rows.push(TrainRow { t: gi * g + j, mask, adv: Advantage::Sequence(ax.group[j]), eps });
        }
        for ((_, (end, ts)), advs) in in_group.iter().zip(&ax.continuations) {
            stats.recovered += ts.iter().any(|t| t.solved()) as usize;
            for (t, &adv) in ts.iter().zip(advs) {
                rows.push(TrainRow {
                    t: next,
                    mask: Some(continuation_only(&t.loss_mask, *end)),
                    adv: Advantage::Sequence(adv),
                    eps,
                });
                next += 1;
            }
        }
    }
    let extra: Vec<Trajectory> = resamples.into_values().flat_map(|(_, ts)| ts).collect();
    Ok((extra, rows, stats))
}

#[cfg(test)]
#[path = "axpo_resample_tests.rs"]
mod tests;
