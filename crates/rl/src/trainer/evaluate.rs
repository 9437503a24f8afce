//! The evaluation stage: the policy on held-out tasks — greedy pass@1 task by task, pass@k over
//! `eval.samples` samples at the RL temperature, and the sampled episodes' tool use and reward.

use super::{RunContext, StepMetrics};
use crate::axpo::RolloutView;
use crate::axpo_resample::views_of;
use crate::diagnostics::{pass_at_k, tool_use_rate};
use kaizen_core::Task;
use kaizen_models::LocalLlm;
use kaizen_rollout::runner::{Mode, Runner};
use kaizen_rollout::{Agent, EpisodeConfig, Job};

/// An `eval` metrics line for the policy `llm` after `step` RL steps, on `tasks`.
pub(super) fn evaluate(ctx: &RunContext, llm: &LocalLlm, tasks: &[Task], step: usize) -> StepMetrics {
    let solved = greedy_solved(ctx, llm, tasks);
    let pass_1 = share(&solved);
    let k = ctx.recipe.eval.samples;
    let jobs: Vec<Job> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| (0..k).map(move |j| Job::new(t.clone(), (i * k + j) as u64, format!("{i:05}-{j}"))))
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut sampled = Vec::new();
    Runner::new(Agent::Local(llm), ctx.env, ctx.tools, 8)
        .run(jobs, &ctx.episode, &Mode::Plain, &mut |t| sampled.push(t));
    kaizen_rollout::in_job_order(&mut sampled, &ids);
    let pass_k = sampled.chunks(k).map(|g| pass_at_k(k, g.iter().filter(|t| t.solved()).count(), k)).sum::<f64>()
        / tasks.len().max(1) as f64;
    let views: Vec<Vec<RolloutView>> = sampled.chunks(k).map(views_of).collect();
    StepMetrics {
        phase: "eval".into(),
        step,
        pass_at_1: Some(pass_1),
        pass_at_k: Some(pass_k),
        greedy_solved: Some(solved),
        tool_use_rate: tool_use_rate(&views),
        reward: sampled.iter().map(|t| t.reward as f64).sum::<f64>() / sampled.len().max(1) as f64,
        ..Default::default()
    }
}

/// Whether the policy solves each of `tasks` greedily (temperature 0), in task order, each
/// episode otherwise as the run's.
pub(super) fn greedy_solved(ctx: &RunContext, llm: &LocalLlm, tasks: &[Task]) -> Vec<bool> {
    let greedy_cfg = EpisodeConfig { temperature: 0.0, ..ctx.episode.clone() };
    let jobs = tasks.iter().enumerate().map(|(i, t)| Job::new(t.clone(), i as u64, format!("{i}")));
    let mut solved = vec![false; tasks.len()];
    Runner::new(Agent::Local(llm), ctx.env, ctx.tools, 8).run(jobs, &greedy_cfg, &Mode::Plain, &mut |t| {
        if let Some(s) = t.episode_id.parse::<usize>().ok().and_then(|i| solved.get_mut(i)) {
            *s = t.solved();
        }
    });
    solved
}

/// The share of `true`s.
pub(super) fn share(solved: &[bool]) -> f64 {
    solved.iter().filter(|&&s| s).count() as f64 / solved.len().max(1) as f64
}
