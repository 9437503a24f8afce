//! The rollout stage of an RL step: the step's tasks from the task source (the run's env — a
//! generator, a task-pool file, or a curriculum's env), a group of `rl.group` episodes per task
//! on the current policy through the batched engine, rewarded by the run's `Reward`, recorded,
//! and turned into training rows by the recipe's estimator (AXPO adds its resampled
//! continuations).

use super::RunContext;
use crate::axpo_resample::{axpo_rows, Resampling};
use crate::estimator::TrainRow;
use crate::setup::{Reward, Scoring};
use crate::streams;
use crate::RlError;
use kaizen_core::Trajectory;
use kaizen_models::LocalLlm;
use kaizen_rollout::engine::EngineStats;
use kaizen_rollout::runner::{Mode, Runner};
use kaizen_rollout::{Agent, Job, RunDir};
use std::time::Instant;

/// One RL step's episodes and what they train.
pub(super) struct StepRollouts {
    /// `tasks_per_step` groups of `group`, in task order.
    pub rollouts: Vec<Trajectory>,
    /// AXPO's continuations (none for other estimators).
    pub extra: Vec<Trajectory>,
    /// Rows index `rollouts` followed by `extra`.
    pub rows: Vec<TrainRow>,
    pub resampling: Resampling,
    pub engine: EngineStats,
    pub seconds: f64,
}

impl StepRollouts {
    /// Every trajectory a row may index: the rollouts, then AXPO's continuations.
    pub fn trajectories(&self) -> Vec<&Trajectory> {
        self.rollouts.iter().chain(&self.extra).collect()
    }
}

/// Rolls out, rewards, records and scores RL step `step`.
pub(super) fn roll_out(
    ctx: &RunContext,
    llm: &LocalLlm,
    reward: &mut dyn Reward,
    run: &mut RunDir,
    step: usize,
) -> crate::Result<StepRollouts> {
    let (recipe, g) = (ctx.recipe, ctx.recipe.rl.group);
    let t0 = Instant::now();
    let tasks = streams::rl_tasks(ctx.env, recipe, step);
    let jobs: Vec<Job> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, task)| {
            (0..g).map(move |j| {
                let seed = recipe.seed.wrapping_mul(1_000_003).wrapping_add((step * 10_000 + i * g + j) as u64);
                Job::new(task.clone(), seed, format!("s{step:04}-t{i:03}-g{j:02}"))
            })
        })
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let mut rollouts = Vec::new();
    // A local model's plain episodes run in the batched engine, which always reports its stats.
    let engine = Runner::new(Agent::Local(llm), ctx.env, ctx.tools, 8)
        .run(jobs, &ctx.episode, &Mode::Plain, &mut |t| rollouts.push(t))
        .unwrap_or_default();
    kaizen_rollout::in_job_order(&mut rollouts, &ids);
    if recipe.rl.estimator.reads_verdicts() && !reward.writes_verdicts() {
        return Err(RlError::Input(format!(
            "rl.estimator = \"{}\" reads each step's verifier verdict, and this run's reward writes none",
            recipe.rl.estimator
        )));
    }
    reward
        .score(&Scoring { step, policy: llm, tools: ctx.tools, env: ctx.env, episode: &ctx.episode }, &mut rollouts)?;
    for t in &rollouts {
        run.append(t).map_err(|e| RlError::Rollout(format!("recording a rollout: {e}")))?;
    }
    let seconds = t0.elapsed().as_secs_f64();

    // Advantages per group (rollouts are sorted: groups of G in task order). AXPO adds
    // continuations resampled from the least confident failed tool calls.
    let estimator = recipe.rl.estimator;
    let (extra, rows, resampling) = if estimator.resamples_tool_calls() {
        if !reward.is_checker() {
            return Err(RlError::Input(format!(
                "rl.estimator = \"{estimator}\" resamples tool calls and needs the env's checker as the reward"
            )));
        }
        let mut resample = |jobs: Vec<Job>| {
            let mut out = Vec::new();
            Runner::new(Agent::Local(llm), ctx.env, ctx.tools, 8)
                .run(jobs, &ctx.episode, &Mode::Plain, &mut |t| out.push(t));
            out
        };
        axpo_rows(llm, &rollouts, recipe, step, &mut resample)?
    } else {
        let mut rows = Vec::with_capacity(rollouts.len());
        for (gi, group) in rollouts.chunks(g).enumerate() {
            let a = estimator.advantages(group, &recipe.rl);
            let eps = a.eps_high;
            rows.extend(a.advantages.into_iter().enumerate().map(|(j, adv)| TrainRow {
                t: gi * g + j,
                mask: None,
                adv,
                eps,
            }));
        }
        (Vec::new(), rows, Resampling::default())
    };
    for t in &extra {
        run.append(t).map_err(|e| RlError::Rollout(format!("recording a resampled rollout: {e}")))?;
    }
    Ok(StepRollouts { rollouts, extra, rows, resampling, engine, seconds })
}
