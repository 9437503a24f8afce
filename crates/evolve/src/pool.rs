//! The executor's task pool (`../shared/METHODS.md` §4): the frozen curriculum writes tasks, the
//! executor answers each `k` times, tasks whose self-consistency `p̂` lies in `[0.3, 0.8]` are
//! kept, and the majority answer becomes the task's pseudo-label. No ground truth is read:
//! the label is the executor's own vote.
//!
//! The pool is a task file `kaizen train` reads (`jsonl:POOL`): one line per task with
//! `prompt`, `answer` (the pseudo-label), `checker: "numeric"`, and `meta` — `p_hat` (which
//! ADPO's advantage scale and clip read), the votes, tool calls, the iteration and the
//! curriculum checkpoint that wrote it.

use crate::curriculum::Judged;
use kaizen_core::{Checker, Env, Task, Trajectory};
use kaizen_models::LocalLlm;
use kaizen_rollout::runner::{Mode, Runner};
use kaizen_rollout::{Agent, EpisodeConfig, Job};
use kaizen_tools::ToolRegistry;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The checker pseudo-labels are compared with: numeric equality ("1,234" = "1234.0").
pub fn label_checker() -> Checker {
    Checker::Numeric { rel_tol: 1e-6, abs_tol: 0.0 }
}

/// A generated task as the executor sees it: its text, no reference answer.
pub fn unlabelled(id: String, text: &str) -> Task {
    Task {
        id,
        prompt: text.to_string(),
        answer: String::new(),
        checker: label_checker(),
        meta: serde_json::Value::Null,
        images: Vec::new(),
    }
}

/// The vote of `k` samples' answers, grouped as the numeric checker compares them:
/// `p̂` = the top answer's votes / k; a tie when the top two have as many votes.
pub fn vote(answers: &[Option<String>], tool_calls: f64) -> Judged {
    let checker = label_checker();
    let mut counts = kaizen_rl::answer_counts(answers, |a, b| checker.same_answer(a, b));
    // Stable: among equal counts the answer seen first stays first.
    counts.sort_by(|a, b| b.1.cmp(&a.1));
    let tie = counts.len() > 1 && counts[0].1 == counts[1].1;
    let (majority, top) = counts.first().map_or((None, 0), |(a, c)| (Some(a.clone()), *c));
    Judged { p_hat: top as f64 / answers.len().max(1) as f64, majority, tie, tool_calls }
}

/// Runs `k` executor samples of every task (`cfg`'s temperature, turns and tools) and votes.
/// Returns each task's verdict and every sample, in task order.
pub fn judge(
    executor: &LocalLlm,
    env: &dyn Env,
    tools: &ToolRegistry,
    cfg: &EpisodeConfig,
    tasks: &[Task],
    k: usize,
    seed: u64,
) -> crate::Result<(Vec<Judged>, Vec<Trajectory>)> {
    let jobs: Vec<Job> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| {
            (0..k).map(move |j| Job::new(t.clone(), seed.wrapping_add((i * k + j) as u64), format!("{}-k{j:02}", t.id)))
        })
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut samples = Vec::with_capacity(jobs.len());
    Runner::new(Agent::Local(executor), env, tools, 8).run(jobs, cfg, &Mode::Plain, &mut |t| samples.push(t));
    kaizen_rollout::in_job_order(&mut samples, &ids);
    // One trajectory per job, in job order, or the votes would land on the wrong tasks.
    let in_order = samples.len() == ids.len() && samples.iter().zip(&ids).all(|(t, id)| &t.episode_id == id);
    if !in_order {
        let (n, of) = (samples.len(), ids.len());
        return Err(crate::EvolveError::Rollout(format!("the engine returned {n} of {of} samples in job order")));
    }
    let judged = samples
        .chunks(k)
        .map(|g| {
            let answers: Vec<Option<String>> = g.iter().map(|t| t.final_answer.clone()).collect();
            let calls = g.iter().map(|t| t.tool_calls() as f64).sum::<f64>() / k as f64;
            vote(&answers, calls)
        })
        .collect();
    Ok((judged, samples))
}

/// What happened to the curriculum's outputs on their way into the pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Outputs the curriculum wrote.
    pub candidates: usize,
    /// Failed the format gate (no `<question>…</question>`).
    pub unparseable: usize,
    /// The same text (normalised) as an earlier candidate.
    pub duplicates: usize,
    /// The same text as a held-out evaluation task: dropped, never trained on.
    pub held_out: usize,
    /// Judged by the executor (what remained).
    pub judged: usize,
    /// No sample answered.
    pub no_answer: usize,
    /// The top two answers had as many votes: no pseudo-label.
    pub ties: usize,
    /// The majority answer is not a number, so the numeric checker could not use it.
    pub non_numeric: usize,
    /// `p̂` above the band (the executor agrees with itself: too easy).
    pub too_easy: usize,
    /// `p̂` below the band (the executor is lost: too hard, or the task is ill-posed).
    pub too_hard: usize,
    pub kept: usize,
}

impl PoolStats {
    /// Kept tasks as a share of the judged ones.
    pub fn keep_rate(&self) -> f64 {
        self.kept as f64 / self.judged.max(1) as f64
    }
}

/// Parsed, distinct, not-held-out candidates (in order), counting the rest in `stats`.
/// `held_out` holds the content keys (`Task::content_key`) of every held-out task.
pub fn screen(parsed: &[Option<String>], held_out: &HashSet<String>, stats: &mut PoolStats) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    stats.candidates += parsed.len();
    for p in parsed {
        let Some(text) = p else {
            stats.unparseable += 1;
            continue;
        };
        let key = unlabelled(String::new(), text).content_key();
        if held_out.contains(&key) {
            stats.held_out += 1;
        } else if !seen.insert(key) {
            stats.duplicates += 1;
        } else {
            out.push(text.clone());
        }
    }
    out
}

/// One pool task: a line of the pool file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolTask {
    pub id: String,
    pub prompt: String,
    /// The pseudo-label: the executor's majority answer.
    pub answer: String,
    pub checker: String,
    pub meta: PoolMeta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolMeta {
    pub p_hat: f64,
    /// Samples behind `p_hat`.
    pub samples: usize,
    pub tool_calls: f64,
    pub iteration: usize,
    /// The curriculum weights that wrote the task.
    pub curriculum: String,
}

/// The band of `p̂` kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Band {
    pub low: f64,
    pub high: f64,
}

/// The pool from the judged tasks: answered, no tie, a numeric majority, `low ≤ p̂ ≤ high`.
pub fn select(
    tasks: &[String],
    judged: &[Judged],
    band: Band,
    samples: usize,
    iteration: usize,
    curriculum: &str,
    stats: &mut PoolStats,
) -> Vec<PoolTask> {
    stats.judged += tasks.len();
    let mut pool = Vec::new();
    for (i, (text, j)) in tasks.iter().zip(judged).enumerate() {
        let Some(label) = &j.majority else {
            stats.no_answer += 1;
            continue;
        };
        if j.tie {
            stats.ties += 1;
        } else if kaizen_core::parse_number(label).is_none() {
            stats.non_numeric += 1;
        } else if j.p_hat > band.high {
            stats.too_easy += 1;
        } else if j.p_hat < band.low {
            stats.too_hard += 1;
        } else {
            stats.kept += 1;
            pool.push(PoolTask {
                id: format!("it{iteration}-{i:04}"),
                prompt: text.clone(),
                answer: label.clone(),
                checker: "numeric".into(),
                meta: PoolMeta {
                    p_hat: j.p_hat,
                    samples,
                    tool_calls: j.tool_calls,
                    iteration,
                    curriculum: curriculum.to_string(),
                },
            });
        }
    }
    pool
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
