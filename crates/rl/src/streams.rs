//! A recipe's task streams: the SFT demonstrations, the RL tasks (one draw per step), the SFT
//! check set and the held-out evaluation set.
//!
//! Held out means held out *by content*: distinct seeds do not make distinct tasks (arith draws
//! from a finite space, and about 17% of a seed-separated held-out set repeated a training
//! task), so the check and evaluation sets skip every task whose normalised text
//! (`Task::content_key`) appears anywhere in what training sees, and every repeat within the set.
//! Envs with sessions (web pages seeded per episode) are the exception: their task text is the
//! task's name, their content the page, so their sets stay seed-separated.

use crate::recipe::Recipe;
use kaizen_core::{Env, Task};
use std::collections::HashSet;

/// Seeds of the streams, XOR-ed with the recipe's (demonstrations use the recipe's own).
const RL_STREAM: u64 = 0x5EED_0001;
const EVAL_STREAM: u64 = 0xE7A1_0000;
/// Validation tasks for `sft.target_pass`.
const CHECK_STREAM: u64 = 0xC4EC_0000;

/// The tasks whose demonstrations SFT trains on.
pub fn demonstration_tasks(env: &dyn Env, recipe: &Recipe) -> Vec<Task> {
    env.tasks(recipe.seed, recipe.sft.demonstrations.max(1))
}

/// RL step `step`'s tasks.
pub fn rl_tasks(env: &dyn Env, recipe: &Recipe, step: usize) -> Vec<Task> {
    env.tasks(recipe.seed ^ RL_STREAM.wrapping_add(step as u64), recipe.rl.tasks_per_step)
}

/// The content of every task training can see: the demonstrations (when SFT runs) and every
/// RL step's tasks.
pub fn training_content(env: &dyn Env, recipe: &Recipe) -> HashSet<String> {
    let sft = if recipe.sft.steps > 0 { demonstration_tasks(env, recipe) } else { Vec::new() };
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

/// `n` tasks of stream `seed`, skipping content in `seen` and repeats; an error naming `field`
/// when the env has too few distinct tasks left (20 draws a task tried).
fn held_out(env: &dyn Env, seed: u64, n: usize, seen: &HashSet<String>, field: &str) -> Result<Vec<Task>, String> {
    if env.has_sessions() {
        // A session env (web pages) writes each episode's content when it opens (the page of
        // its seed); the task's text is only the task's name and says nothing of content.
        return Ok(env.tasks(seed, n));
    }
    let mut taken = HashSet::new();
    let drawn = env.tasks(seed, n.saturating_mul(20));
    let out: Vec<Task> = drawn
        .into_iter()
        .filter(|t| {
            let key = t.content_key();
            !seen.contains(&key) && taken.insert(key)
        })
        .take(n)
        .collect();
    if out.len() < n {
        return Err(format!(
            "{field}: only {} of {n} held-out tasks of {} differ from every training task; lower {field}",
            out.len(),
            env.name()
        ));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "streams_tests.rs"]
mod tests;
