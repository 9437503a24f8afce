//! `kaizen evolve --mode vl`: Agent0-VL's self-evolving cycle (`../shared/METHODS.md` §5). One
//! policy is solver and verifier. Before the first iteration, the cold start: SFT on the
//! env's demonstrations and on worked verifications of its own rollouts (the train recipe's
//! `[sft]`; `start` skips it). Each iteration then
//! 1. trains on process rewards — solve → verify every step → repair where a verdict is unsure
//!    (`conf < τ_c`) → GRPO on the process returns (`kaizen_rl::VerifierReward`, estimator
//!    `process`) — for `rl.steps` steps from the previous iteration's weights;
//! 2. scores the policy on held-out tasks: the solver alone (greedy), the same episodes after
//!    the verifier judged them and repaired the unsure ones (how many repairs, how many turned
//!    wrong into right and right into wrong), and optionally the verifier as a process reward
//!    model picking one of N sampled solutions, beside majority vote, random and pass@N.
//!
//! Deviation, named: each iteration is a fresh `kaizen train` stage, so AdamW's moments and the
//! KL reference (`rl.beta`) restart from the previous iteration's weights, as each Agent0
//! stage does; one long run would keep them.
//!
//! One run directory: `config.json` (the resolved recipe, the train recipe inline),
//! `held_out.json` (the held-out tasks' content keys, `evolution::HELD_OUT`), `iter-0/cold-start/` (a training run),
//! per iteration `iter-N/train/` (a training run `kaizen report` reads), `iter-N/held-out/`
//! (the scored episodes, repaired ones with their originals in `reward_detail.repairs`) and
//! `iter-N/eval.json`; `evolution.jsonl` holds one line per scored iteration. Every stage's
//! result is written last and atomically, so after `kill -9` the cycle resumes at the first
//! stage without one — a training stage from its own latest checkpoint.

use crate::error::{EvolveError, Result};
use crate::evolution::{
    absolute, absolute_task_file, create_dir, new_run_dir, pin_held_out, read_run_config, train_stage, write_evolution,
    write_file, Event, SetScore,
};
use crate::vl_recipe::VlRecipe;
use kaizen_core::{Env, Message, Task};
use kaizen_models::LocalLlm;
use kaizen_q::metrics::wilson_interval;
use kaizen_rl::trainer::{final_weights, policy_at};
use kaizen_rl::verifier_reward::repair_counts;
use kaizen_rl::{Reward, Scoring, Setup, VerifierReward};
use kaizen_rollout::prm_eval::{evaluate, TaskOutcome};
use kaizen_rollout::runner::Runner;
use kaizen_rollout::verifier::VerifierEnv;
use kaizen_rollout::{Agent, EpisodeConfig, Job};
use kaizen_tools::ToolRegistry;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Seeds of the held-out tasks, of their verification and of the PRM candidates.
const HELD_OUT_STREAM: u64 = 0xA6E7_0000;
const VERIFY_STREAM: u64 = 0xA6E7_5E1F;
const PRM_STREAM: u64 = 0xA6E7_0B0F;

/// A held-out score with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub solved: usize,
    pub tasks: usize,
    pub low: f64,
    pub high: f64,
}

impl Rate {
    pub fn of(solved: usize, tasks: usize) -> Self {
        let (low, high) = wilson_interval(solved, tasks, 1.96);
        Rate { solved, tasks, low, high }
    }

    pub fn share(&self) -> f64 {
        self.solved as f64 / self.tasks.max(1) as f64
    }
}

/// The verifier as a process reward model on `n` sampled solutions per held-out task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrmScores {
    pub candidates: usize,
    pub prm: Rate,
    pub majority: Rate,
    pub random: Rate,
    pub oracle: Rate,
    /// Steps judged, and of those unreadable.
    pub steps: usize,
    pub unreadable: usize,
}

/// One iteration's held-out scores (`iter-N/eval.json`, a line of `evolution.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VlRecord {
    pub iteration: usize,
    pub set: String,
    /// The solver alone, greedy.
    pub solver: SetScore,
    /// The same episodes after the verifier judged them and the unsure ones were repaired.
    pub repaired: SetScore,
    /// Repairs that re-derived an episode (an episode may have several with
    /// `repair_budget > 1`); of those, wrong → right and right → wrong.
    pub repairs: usize,
    pub wrong_to_right: usize,
    pub right_to_wrong: usize,
    /// Episodes re-derived at least once: the repair rate is this over `solver.tasks`.
    #[serde(default)]
    pub episodes_repaired: usize,
    /// Repairs a verdict opened that re-derived nothing: the repairer wrote "no change" or
    /// nothing readable, the episode's token record could not be cut at the step, or the
    /// re-derivation failed.
    pub declined: usize,
    /// Share of judged steps whose verdict could not be read (`None`: none judged).
    pub unreadable: Option<f64>,
    /// Mean score of the readable verdicts.
    pub verifier_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prm: Option<PrmScores>,
    /// The iteration's RL: mean outcome reward of its rollouts, and its repairs (none for 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingSummary>,
    pub seconds: f64,
}

impl VlRecord {
    pub fn solver_rate(&self) -> Rate {
        Rate::of(self.solver.solved, self.solver.tasks)
    }
    pub fn repaired_rate(&self) -> Rate {
        Rate::of(self.repaired.solved, self.repaired.tasks)
    }
}

/// What an iteration's RL stage did, from its `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub steps: usize,
    pub mean_reward: f64,
    pub repairs: usize,
    pub repairs_fixed: usize,
    pub repairs_broke: usize,
    pub seconds: f64,
}

/// Starts a new cycle of `recipe` in `out` (which must not hold a run).
pub fn evolve_vl(recipe: &VlRecipe, out: &Path, on: &mut dyn FnMut(Event)) -> Result<Vec<VlRecord>> {
    recipe.validate().map_err(EvolveError::Recipe)?;
    new_run_dir(out)?;
    let mut recipe = recipe.clone();
    // Paths absolute, so a resume from another directory reads the same files.
    if let Some(s) = &recipe.start {
        recipe.start = Some(absolute(s)?);
    }
    for spec in [&mut recipe.train.env]
        .into_iter()
        .chain(recipe.held_out.set.as_mut())
        .chain(recipe.train.shots_from.as_mut())
        .chain(recipe.train.sft.mix.iter_mut().map(|m| &mut m.env))
    {
        absolute_task_file(spec)?;
    }
    // A held-out set that cannot be drawn is refused before the run directory holds a run.
    let held = held_out_tasks(&recipe)?;
    write_file(&out.join("config.json"), serde_json::to_string_pretty(&recipe)?.as_bytes())?;
    run(&recipe, out, held, on)
}

/// Whether `out` holds an Agent0-VL cycle (its `config.json` says `"mode": "vl"`).
pub fn is_vl_run(out: &Path) -> bool {
    std::fs::read_to_string(out.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["mode"] == crate::vl_recipe::VL_MODE)
}

/// Continues the cycle in `out` at its first unfinished stage, with its own recipe.
pub fn resume_vl(out: &Path, on: &mut dyn FnMut(Event)) -> Result<Vec<VlRecord>> {
    let path = out.join("config.json");
    let recipe: VlRecipe = serde_json::from_str(&read_run_config(out)?).map_err(EvolveError::json(&path))?;
    recipe.validate().map_err(EvolveError::Recipe)?;
    let held = held_out_tasks(&recipe)?;
    run(&recipe, out, held, on)
}

/// The held-out set: its env spec, the env, its tasks.
pub type HeldOut = (String, Box<dyn Env>, Vec<Task>);

/// The held-out tasks: `held_out.tasks` of the set's env from a stream of their own, distinct
/// by content, none whose content any stage of the cycle trains on (the cold start's
/// demonstrations and those of `sft.mix` — or what the `start` run's weights were trained on
/// —, every iteration's RL tasks) or any prompt shows (the worked examples' stream).
pub fn held_out_tasks(recipe: &VlRecipe) -> Result<HeldOut> {
    let open = |spec: &str| kaizen_envs::open(spec);
    let train_env = open(&recipe.train.env).map_err(EvolveError::env("train.env", &recipe.train.env))?;
    // Refused here, before a new run's directory holds a run, as the cold start would refuse it.
    if kaizen_rl::setup::repairs_a_session_env(&recipe.train, train_env.as_ref()) {
        let why = "a session env cannot be repaired from a step; set rl.process.repair_budget = 0";
        return Err(EvolveError::env("train.env", &recipe.train.env)(why.into()));
    }
    let mixed: Vec<Box<dyn Env>> = recipe
        .train
        .sft
        .mix
        .iter()
        .map(|m| open(&m.env).map_err(EvolveError::env("train.sft.mix", &m.env)))
        .collect::<Result<_>>()?;
    let mut seen: HashSet<String> = match &recipe.start {
        None => kaizen_rl::streams::training_content(train_env.as_ref(), &recipe.cold_start_recipe(), &mixed),
        // What the run the cycle starts from trained on.
        Some(run) => kaizen_rl::trainer::trained_content(run, &open).map_err(in_start(run))?,
    };
    for i in 1..=recipe.iterations {
        let r = recipe.iteration_recipe(i);
        seen.extend(
            (0..r.rl.steps)
                .flat_map(|s| kaizen_rl::streams::rl_tasks(train_env.as_ref(), &r, s))
                .map(|t| t.content_key()),
        );
    }
    // The worked examples' stream: their solutions are in every prompt.
    if recipe.train.shots > 0 {
        let from = recipe.train.shots_from.as_deref().unwrap_or(&recipe.train.env);
        let shots_env = open(from).map_err(EvolveError::env("train.shots_from", from))?;
        seen.extend(
            shots_env.tasks(kaizen_rollout::episode::SHOT_SEED, 4 * recipe.train.shots).iter().map(Task::content_key),
        );
    }
    let spec = recipe.held_out.set.clone().unwrap_or_else(|| recipe.train.env.clone());
    let env = open(&spec).map_err(EvolveError::env("held_out.set", &spec))?;
    if env.has_sessions() {
        return Err(EvolveError::env("held_out.set", &spec)("no answers to score (a session env)".into()));
    }
    let mut distinct = HashSet::new();
    let tasks: Vec<Task> = env
        .tasks(recipe.train.seed ^ HELD_OUT_STREAM, recipe.held_out.tasks)
        .into_iter()
        .filter(|t| !seen.contains(&t.content_key()) && distinct.insert(t.content_key()))
        .collect();
    if tasks.is_empty() {
        return Err(EvolveError::env("held_out.set", &spec)("no task is left once training's are taken out".into()));
    }
    Ok((spec, env, tasks))
}

/// What to tell the user when the held-out set is smaller than `held_out.tasks` asked: of the
/// tasks drawn from the set's stream, some repeat or are trained on and are left out (not
/// replaced: a resumed run must draw the same set). The run goes on, with wider intervals.
pub fn shortfall(recipe: &VlRecipe, (spec, _, tasks): &HeldOut) -> Option<String> {
    (tasks.len() < recipe.held_out.tasks).then(|| {
        format!(
            "held_out.set {spec}: of the {} tasks drawn, {} are distinct and not trained on; scoring on {}",
            recipe.held_out.tasks,
            tasks.len(),
            tasks.len()
        )
    })
}

fn iter_dir(out: &Path, i: usize) -> PathBuf {
    out.join(format!("iter-{i}"))
}

/// The training stage whose final weights iteration `i` ends with (iteration 0 with `start`:
/// none, the start run's weights).
fn stage_dir(out: &Path, i: usize) -> PathBuf {
    match i {
        0 => iter_dir(out, 0).join("cold-start"),
        _ => iter_dir(out, i).join("train"),
    }
}

/// An error about the run the recipe's `start` names.
fn in_start(run: &Path) -> impl FnOnce(kaizen_rl::RlError) -> EvolveError {
    let path = run.to_path_buf();
    move |e| EvolveError::Run { path, what: format!("start: {e}") }
}

/// The trainable weights after iteration `i`.
fn weights_after(recipe: &VlRecipe, out: &Path, i: usize) -> Result<PathBuf> {
    match (i, &recipe.start) {
        (0, Some(run)) => final_weights(run).map_err(in_start(run)),
        _ => Ok(final_weights(&stage_dir(out, i))?),
    }
}

/// Runs every stage not yet done, in order, scoring on `held` (`held_out_tasks`).
fn run(recipe: &VlRecipe, out: &Path, held: HeldOut, on: &mut dyn FnMut(Event)) -> Result<Vec<VlRecord>> {
    let out = &absolute(out)?;
    if let Some(warning) = shortfall(recipe, &held) {
        on(Event::Warning(&warning));
    }
    let (spec, env, tasks) = held;
    pin_held_out(out, tasks.iter().map(Task::content_key).collect())?;
    let open = |s: &str| kaizen_envs::open(s);
    let mut records = Vec::new();
    for i in 0..=recipe.iterations {
        let stage = stage_dir(out, i);
        if (i > 0 || recipe.start.is_none()) && !stage.join(crate::evolution::DONE).exists() {
            let (what, stage_recipe, start) = match i {
                0 => ("cold start: SFT on demonstrations and worked verifications", recipe.cold_start_recipe(), None),
                _ => (
                    "RL on process rewards (solve, verify, repair)",
                    recipe.iteration_recipe(i),
                    Some(weights_after(recipe, out, i - 1)?),
                ),
            };
            on(Event::Stage(i, what));
            let setup = Setup::of_recipe(&stage_recipe, &open, ToolRegistry::standard())?;
            train_stage(&stage_recipe, &stage, setup, start.as_deref(), on)?;
        }
        let eval = iter_dir(out, i).join("eval.json");
        if !eval.exists() {
            on(Event::Stage(i, "scoring on the held-out tasks: solver alone, verifier + repair"));
            let r = score(recipe, out, i, &spec, env.as_ref(), &tasks)?;
            write_file(&eval, serde_json::to_string_pretty(&r)?.as_bytes())?;
        }
        let r: VlRecord = crate::evolution::read_json(&eval)?;
        on(Event::VlIteration(&r));
        records.push(r);
        write_evolution(out, &records)?;
    }
    Ok(records)
}

/// The solver's episodes on the held-out tasks: the train recipe's turns and tokens, greedy.
fn solver_episode(recipe: &VlRecipe, shots: Vec<Message>, temperature: f32) -> EpisodeConfig {
    let args = kaizen_rollout::EpisodeArgs { temperature, ..recipe.train.rl.episode() };
    args.config(shots, recipe.train.tool_schemas, false)
}

/// Iteration `i`'s held-out scores.
fn score(recipe: &VlRecipe, out: &Path, i: usize, spec: &str, env: &dyn Env, tasks: &[Task]) -> Result<VlRecord> {
    let t0 = Instant::now();
    let dir = iter_dir(out, i);
    create_dir(&dir)?;
    let weights = weights_after(recipe, out, i)?;
    let llm = policy_at(&recipe.train, Some(&weights), &dir.join("policy.gguf"))?;
    let tools = ToolRegistry::standard();
    // Prompted as training prompts: the worked examples of the train env (or `shots_from`).
    let train_env = kaizen_envs::open(&recipe.train.env).map_err(EvolveError::env("train.env", &recipe.train.env))?;
    let shots = kaizen_rl::setup::worked_examples(
        train_env.as_ref(),
        recipe.train.shots_from.as_deref(),
        &|s: &str| kaizen_envs::open(s),
        &tools,
        recipe.train.shots,
    )?;
    let greedy = solver_episode(recipe, shots.clone(), 0.0);
    let jobs = tasks.iter().enumerate().map(|(j, t)| Job::new(t.clone(), j as u64, format!("{j:05}"))).collect();
    let mut episodes = Runner::new(Agent::Local(&llm), env, &tools, 8).run_in_order(jobs, &greedy);
    let solver = SetScore::of(spec, &episodes);
    let seed = recipe.iteration_seed(i) ^ VERIFY_STREAM;
    let mut verifier =
        VerifierReward { process: recipe.train.rl.process, tools: env.tool_names(), seed, verifier: None };
    verifier.score(&Scoring { step: 0, policy: &llm, tools: &tools, env, episode: &greedy }, &mut episodes)?;
    let (repairs, wrong_to_right, right_to_wrong) = repair_counts(&episodes).unwrap_or_default();
    let episodes_repaired =
        episodes.iter().filter(|t| kaizen_rl::verifier_reward::repairs_of(t).iter().any(|r| r.after.is_some())).count();
    let declined = kaizen_rl::verifier_reward::declined_repairs(&episodes);
    let record_dir = dir.join("held-out");
    if record_dir.exists() {
        // Killed while writing them: they are written again, whole.
        std::fs::remove_dir_all(&record_dir).map_err(EvolveError::io(&record_dir))?;
    }
    let mut run = kaizen_rollout::RunDir::create(
        &record_dir,
        &serde_json::json!({"verb": "evolve --mode vl", "set": spec, "iteration": i}),
    )
    .map_err(EvolveError::Rollout)?;
    for t in &episodes {
        run.append(t).map_err(EvolveError::Rollout)?;
    }
    let prm = match recipe.held_out.candidates {
        0 => None,
        n => Some(prm_scores(recipe, &llm, env, &tools, tasks, n, shots, recipe.iteration_seed(i) ^ PRM_STREAM)),
    };
    Ok(VlRecord {
        iteration: i,
        set: spec.to_string(),
        solver,
        repaired: SetScore::of(spec, &episodes),
        repairs,
        wrong_to_right,
        right_to_wrong,
        episodes_repaired,
        declined,
        unreadable: kaizen_rl::process::unreadable_share(&episodes),
        verifier_score: kaizen_rl::process::mean_score(&episodes),
        prm,
        training: if i > 0 { Some(training_summary(&stage_dir(out, i))?) } else { None },
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The verifier as a PRM on `n` solutions per task sampled at `held_out.temperature`.
#[allow(clippy::too_many_arguments)]
fn prm_scores(
    recipe: &VlRecipe,
    llm: &LocalLlm,
    env: &dyn Env,
    tools: &ToolRegistry,
    tasks: &[Task],
    n: usize,
    shots: Vec<Message>,
    seed: u64,
) -> PrmScores {
    let solve = solver_episode(recipe, shots, recipe.held_out.temperature);
    let venv = VerifierEnv::new(env.tool_names());
    let solver = Runner::new(Agent::Local(llm), env, tools, 8);
    let verifier = Runner::new(Agent::Local(llm), &venv, tools, 8);
    let judge = recipe.train.rl.process.verifier_episode();
    let (outcomes, _) = evaluate(&solver, &verifier, tasks, n, &solve, &judge, seed, &mut || {});
    let rate = |f: fn(&TaskOutcome) -> bool| Rate::of(outcomes.iter().filter(|o| f(o)).count(), outcomes.len());
    PrmScores {
        candidates: n,
        prm: rate(TaskOutcome::prm_solved),
        majority: rate(TaskOutcome::majority_solved),
        random: rate(TaskOutcome::random_solved),
        oracle: rate(TaskOutcome::oracle_solved),
        steps: outcomes.iter().map(|o| o.steps).sum(),
        unreadable: outcomes.iter().map(|o| o.unreadable).sum(),
    }
}

/// An RL stage's figures, from its metrics lines.
fn training_summary(stage: &Path) -> Result<TrainingSummary> {
    let path = stage.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(EvolveError::io(&path))?;
    let rl: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["phase"] == "rl")
        .collect();
    let sum = |k: &str| rl.iter().filter_map(|m| m[k].as_f64()).sum::<f64>();
    let count = |k: &str| rl.iter().filter_map(|m| m[k].as_u64()).sum::<u64>() as usize;
    Ok(TrainingSummary {
        steps: rl.len(),
        mean_reward: sum("reward") / rl.len().max(1) as f64,
        repairs: count("repairs"),
        repairs_fixed: count("repairs_fixed"),
        repairs_broke: count("repairs_broke"),
        seconds: sum("rollout_s") + sum("train_s"),
    })
}

#[cfg(test)]
#[path = "vl_tests.rs"]
mod tests;
