//! A recipe's task streams: the SFT demonstrations (the env's and those of `sft.mix`), the RL tasks (one draw per step), the SFT
//! check set and the held-out evaluation set.
//!
//! Held out means held out *by content* (`kaizen_core::env::held_out_tasks`): the check and
//! evaluation sets skip every task whose normalised text appears anywhere in what training sees.

use crate::recipe::Recipe;
use kaizen_core::{Env, Task};
use std::collections::HashSet;

/// Seeds of the streams, XOR-ed with the recipe's (demonstrations use the recipe's own).
const RL_STREAM: u64 = 0x5EED_0001;
const EVAL_STREAM: u64 = 0xE7A1_0000;
/// Validation tasks for `sft.target_pass`.
const CHECK_STREAM: u64 = 0xC4EC_0000;
/// The tasks of `sft.mix[k]` (plus k).
const MIX_STREAM: u64 = 0x313C_0000;

/// The tasks whose demonstrations SFT trains on.
pub fn demonstration_tasks(env: &dyn Env, recipe: &Recipe) -> Vec<Task> {
    env.tasks(recipe.seed, recipe.sft.demonstrations.max(1))
}

/// The tasks of `sft.mix[k]`, drawn from its env `mixed`.
pub fn mix_tasks(mixed: &dyn Env, recipe: &Recipe, k: usize) -> Vec<Task> {
    let n = recipe.sft.mix.get(k).map_or(0, |m| m.demonstrations);
    mixed.tasks(recipe.seed ^ MIX_STREAM.wrapping_add(k as u64), n)
}

/// The items of `sources` in one list, each source spread evenly over it: item `i` of a source
/// of `n` sits at fraction `(i + ½) / n` (ties go to the earlier source), so every stretch of
/// a batch's length draws on each source in proportion to its size. One source comes back as
/// it was.
pub fn interleave<T>(sources: Vec<Vec<T>>) -> Vec<T> {
    let mut keyed: Vec<(f64, usize, T)> = sources
        .into_iter()
        .enumerate()
        .flat_map(|(s, items)| {
            let n = items.len() as f64;
            items.into_iter().enumerate().map(move |(i, item)| ((i as f64 + 0.5) / n, s, item))
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, item)| item).collect()
}

/// RL step `step`'s tasks.
pub fn rl_tasks(env: &dyn Env, recipe: &Recipe, step: usize) -> Vec<Task> {
    env.tasks(recipe.seed ^ RL_STREAM.wrapping_add(step as u64), recipe.rl.tasks_per_step)
}

/// The content of every task training can see: the demonstrations (when SFT runs), those of
/// the `sft.mix` envs (`mixed`, in the recipe's order) and every RL step's tasks.
pub fn training_content(env: &dyn Env, recipe: &Recipe, mixed: &[Box<dyn Env>]) -> HashSet<String> {
    let mut sft = Vec::new();
    if recipe.sft.steps > 0 {
        sft = demonstration_tasks(env, recipe);
        sft.extend(mixed.iter().enumerate().flat_map(|(k, m)| mix_tasks(m.as_ref(), recipe, k)));
    }
    let rl = (0..recipe.rl.steps).flat_map(|step| rl_tasks(env, recipe, step));
    sft.into_iter().chain(rl).map(|t| t.content_key()).collect()
}

/// The held-out evaluation set: `eval.tasks` tasks none of whose content training sees.
pub fn eval_tasks(env: &dyn Env, recipe: &Recipe, seen: &HashSet<String>) -> Result<Vec<Task>, String> {
    held_out(env, recipe.seed ^ EVAL_STREAM, recipe.eval.tasks, seen, "eval.tasks")
}

/// The SFT check set (`sft.target_pass`), held out from training the same way.
pub fn check_tasks(env: &dyn Env, recipe: &Recipe, seen: &HashSet<String>) -> Result<Vec<Task>, String> {
    held_out(env, recipe.seed ^ CHECK_STREAM, recipe.sft.check_tasks, seen, "sft.check_tasks")
}

fn held_out(env: &dyn Env, seed: u64, n: usize, seen: &HashSet<String>, field: &str) -> Result<Vec<Task>, String> {
    kaizen_core::env::held_out_tasks(env, seed, n, |key| seen.contains(key), field)
}

#[cfg(test)]
#[path = "streams_tests.rs"]
mod tests;
