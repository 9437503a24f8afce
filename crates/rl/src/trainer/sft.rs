//! The SFT cold start: the env's solved demonstrations (and those of each `sft.mix` env, and
//! for `rl.estimator = "process"` worked verifications for the verifier role, spread evenly
//! among them), trained on with the token-level cross-entropy of the
//! model-written tokens, stopping early once greedy decoding passes `sft.target_pass` of the
//! validation tasks.

use super::evaluate::{greedy_solved, share};
use super::run_log::RunLog;
use super::{serve, RunContext, StepMetrics, SFT_SOURCES};
use crate::batch::{sft_loss, TokenBatch};
use crate::checkpoint::{Phase, Progress};
use crate::optim::{AdamW, AdamWConfig};
use crate::streams;
use crate::RlError;
use candle_core::{Device, Tensor};
use kaizen_core::{Env, Task, Trajectory};
use kaizen_models::trainable::TrainableLm;
use kaizen_models::LocalLlm;
use kaizen_rollout::runner::Runner;
use kaizen_rollout::verifier::VerifierEnv;
use kaizen_rollout::{demonstration, Agent, EpisodeConfig, Job};
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Runs SFT from `progress` (a fresh run, or an SFT checkpoint with its optimizer `moments`)
/// to `sft.steps` or the target pass rate. `seen` is the content of every training task (the
/// validation tasks are drawn outside it).
pub(super) fn cold_start(
    ctx: &RunContext,
    sft_mix: &[Box<dyn Env>],
    policy: &TrainableLm,
    moments: &HashMap<String, Tensor>,
    progress: &Progress,
    seen: &HashSet<String>,
    log: &mut RunLog,
) -> crate::Result<()> {
    let recipe = ctx.recipe;
    let dev = Device::Cpu;
    let demos = demonstrations(ctx, sft_mix, &serve(policy, &ctx.gguf)?)?;
    let mut opt = AdamW::new(&policy.named_vars()?, AdamWConfig { lr: recipe.sft.lr, ..Default::default() })?;
    if progress.next_step > 0 {
        opt.restore(moments, progress.optimizer_step).map_err(|what| RlError::Run { path: ctx.out.clone(), what })?;
    }
    // `sft.target_pass`: a resumed run reads its last check back from its metrics (cut at the
    // checkpoint), so it stops where an uninterrupted run would.
    let mut passed = recipe.sft.target_pass > 0.0
        && log
            .written()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["phase"] == "sft")
            .filter_map(|m| m["pass_at_1"].as_f64())
            .last()
            .is_some_and(|p| reached(p, recipe.sft.target_pass));
    let check_tasks = streams::check_tasks(ctx.env, recipe, seen).map_err(RlError::env(&recipe.env))?;
    for step in progress.next_step..recipe.sft.steps {
        if passed {
            break;
        }
        let t = Instant::now();
        let picked: Vec<&Trajectory> =
            (0..recipe.sft.batch).map(|k| &demos[(step * recipe.sft.batch + k) % demos.len()]).collect();
        let seqs: Vec<(&[u32], &[u8])> =
            picked.iter().map(|d| (d.token_ids.as_slice(), d.loss_mask.as_slice())).collect();
        let batch =
            TokenBatch::new(&seqs, &[], 0, &dev)?.showing(picked.iter().map(|d| d.token_pictures.clone()).collect());
        let loss =
            sft_loss(&policy.token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, 1.0)?, &batch.mask)?;
        opt.step(&loss.backward()?)?;
        let secs = t.elapsed().as_secs_f64();
        let tokens: usize = seqs.iter().map(|(ids, _)| ids.len()).sum();
        let loss = loss.to_scalar::<f32>()? as f64;
        let check = if recipe.sft.target_pass > 0.0 && (step + 1) % recipe.sft.check_every == 0 {
            let llm = serve(policy, &ctx.gguf)?;
            let pass = share(&greedy_solved(ctx, &llm, &check_tasks));
            passed = reached(pass, recipe.sft.target_pass);
            Some(pass)
        } else {
            None
        };
        log.emit(StepMetrics {
            phase: "sft".into(),
            step,
            loss,
            lr: recipe.sft.lr,
            train_tokens_per_s: tokens as f64 / secs,
            train_s: secs,
            pass_at_1: check,
            ..Default::default()
        })?;
        if (step + 1) % recipe.checkpoint.sft_every == 0 && step + 1 < recipe.sft.steps {
            log.checkpoint(policy, &opt, Phase::Sft, step + 1)?;
        }
    }
    Ok(())
}

/// What SFT trains on: the solved demonstrations of the env's demonstration tasks, and of each
/// `sft.mix` env's (shown without worked examples), interleaved; how many came from each source
/// is written to `SFT_SOURCES`.
fn demonstrations(ctx: &RunContext, sft_mix: &[Box<dyn Env>], llm: &LocalLlm) -> crate::Result<Vec<Trajectory>> {
    let recipe = ctx.recipe;
    let demos_of = |env: &dyn Env, tasks: Vec<Task>, tag: &str, cfg: &EpisodeConfig| {
        tasks
            .into_iter()
            .enumerate()
            .filter_map(|(i, task)| {
                let turns = env.demonstration(&task)?;
                let job = Job::new(task, i as u64, format!("{tag}-{i}"));
                Some(demonstration(llm, env, ctx.tools, job, &turns, cfg))
            })
            .filter(|d| d.solved())
            .collect::<Vec<Trajectory>>()
    };
    let own = demos_of(ctx.env, streams::demonstration_tasks(ctx.env, recipe), "demo", &ctx.episode);
    if own.is_empty() {
        return Err(RlError::env(ctx.env.name())("no demonstrations for SFT; set sft.steps = 0".into()));
    }
    let mut made = vec![serde_json::json!({"env": ctx.env.name(), "demonstrations": own.len()})];
    let mut sources = vec![own];
    for (k, (m, mixed)) in recipe.sft.mix.iter().zip(sft_mix).enumerate() {
        let bare = EpisodeConfig { shots: Vec::new(), ..ctx.episode.clone() };
        let d = demos_of(mixed.as_ref(), streams::mix_tasks(mixed.as_ref(), recipe, k), &format!("mix{k}"), &bare);
        if d.is_empty() {
            return Err(RlError::env(format!("{} (sft.mix)", m.env))("no solved demonstrations".into()));
        }
        made.push(serde_json::json!({"env": mixed.name(), "demonstrations": d.len()}));
        sources.push(d);
    }
    if recipe.rl.estimator.reads_verdicts() && recipe.rl.process.verifier_examples > 0 {
        // The policy as initialised rolls out, on a resumed run too (where `llm` is the
        // checkpoint's), so a resumed run trains on the same worked verifications.
        let path = ctx.out.join("initial.gguf");
        let start = serve(&super::initial_policy(recipe)?, &path)?;
        let venv = VerifierEnv::with_examples(ctx.env.tool_names(), &verified_solvers(ctx, &start, &sources[0]));
        let _ = std::fs::remove_file(&path);
        // A worked verdict longer than the verifier may write a turn would teach it what it is
        // then cut off writing (unreadable, every time): left out. (The env's own
        // demonstrations are not filtered: a tool call's closing tag is a stop string, and
        // recipes train on calls longer than their turn limit.)
        let cfg = recipe.rl.process.verifier_episode();
        let d: Vec<Trajectory> = demos_of(&venv, venv.tasks(0, venv.examples.len()), "verify", &cfg)
            .into_iter()
            .filter(|d| fits(d, cfg.max_tokens_per_turn))
            .collect();
        if d.is_empty() {
            return Err(RlError::Recipe(
                "rl.process.verifier_examples: no worked verification fits the verifier's limits (raise \
                 rl.process.verifier_max_tokens_per_turn: a verdict is ~85 tokens a step on a byte-level policy)"
                    .into(),
            ));
        }
        made.push(serde_json::json!({"env": venv.name(), "demonstrations": d.len()}));
        sources.push(d);
    }
    let record = ctx.out.join(SFT_SOURCES);
    kaizen_core::durable::write_atomic(&record, serde_json::to_string_pretty(&made)?.as_bytes())
        .map_err(RlError::io(&record))?;
    Ok(streams::interleave(sources))
}

/// Agent0-VL's cold start (`rl.process.verifier_examples`): solver episodes of known
/// correctness on the demonstration tasks for worked verifications — the initial policy's own
/// rollouts at the RL temperature (right or wrong, as the checker says) and the env's solved
/// demonstrations (`solved`, right) — half of them wrong where there are enough wrong ones;
/// the rollouts are of the first `2n` demonstration tasks.
///
/// Known weakness, measured (BENCHMARKS.md, Agent0-VL's cycle): on a fresh run the wrong ones
/// are the untrained policy's unformed text, so the verifier learns "well-formed means right" and
/// judges every step of a trained solver right. Plausible wrong solutions (a demonstration
/// ending in another task's answer) were tried as half of the wrong ones and made it worse: the solver
/// fell from 80.0% to 50.5% held out and half the verdicts became unreadable.
fn verified_solvers(ctx: &RunContext, llm: &LocalLlm, solved: &[Trajectory]) -> Vec<Trajectory> {
    let recipe = ctx.recipe;
    let n = recipe.rl.process.verifier_examples;
    // Twice as many rollouts as examples: enough wrong ones where the policy is often wrong,
    // without rolling out every demonstration task.
    let jobs =
        streams::demonstration_tasks(ctx.env, recipe).into_iter().take(2 * n).enumerate().map(|(i, task)| {
            Job::new(task, recipe.seed ^ VERIFIER_STREAM.wrapping_add(i as u64), format!("solve-{i}"))
        });
    let cfg = EpisodeConfig { temperature: recipe.rl.temperature, ..ctx.episode.clone() };
    let rolled = Runner::new(Agent::Local(llm), ctx.env, ctx.tools, 8).run_in_order(jobs.collect(), &cfg);
    let finished = |t: &&Trajectory| !t.turns.is_empty() && !matches!(t.end, kaizen_core::EpisodeEnd::Error { .. });
    let wrong: Vec<&Trajectory> = rolled.iter().filter(finished).filter(|t| !t.solved()).take(n / 2).collect();
    let right = rolled.iter().chain(solved).filter(finished).filter(|t| t.solved()).take(n - wrong.len());
    wrong.into_iter().chain(right).cloned().collect()
}

/// Whether every turn of demonstration `d` is at most `max_tokens` written tokens.
pub(super) fn fits(d: &Trajectory, max_tokens: usize) -> bool {
    d.turns.iter().all(|t| t.generated_tokens <= max_tokens)
}

/// The stream of the cold start's solver episodes, apart from every other stream's seeds.
const VERIFIER_STREAM: u64 = 0x5645_5249_4659;

/// Whether an SFT check's pass rate meets `sft.target_pass` (0: never — the target is off).
pub(super) fn reached(pass: f64, target: f64) -> bool {
    target > 0.0 && pass >= target
}
