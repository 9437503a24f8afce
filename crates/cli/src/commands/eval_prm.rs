//! `kaizen eval-prm`: the verifier as a process reward model (Agent0-VL) on held-out tasks —
//! N solutions per task from any policy, each judged step by step by the verifier, one picked
//! by the verifier's score, by majority vote, at random, and by an oracle (pass@N); each a
//! success rate with its 95% Wilson interval, and the verifier's pick beside the majority and
//! the random pick as paired differences on the same tasks with their 95% paired-bootstrap
//! intervals.

use super::held_out_eval::{row_json, row_text, versus, versus_text, write_table, EvalArgs};
use super::policy::{Backend, PolicyArgs};
use indicatif::{ProgressBar, ProgressStyle};
use kaizen_rollout::prm_eval::{evaluate, TaskOutcome};
use kaizen_rollout::runner::Runner;
use kaizen_rollout::verifier::VerifierEnv;
use kaizen_rollout::EpisodeArgs;
use kaizen_tools::ToolRegistry;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The policy whose solutions are judged, N per task.
    #[command(flatten)]
    eval: EvalArgs,
    /// The verifier: a model as `--policy` takes one (an installed name, a .gguf file, or
    /// `openai:URL`); the policy itself unless told.
    #[arg(long)]
    verifier: Option<String>,
    /// Turns and tokens per turn of a verification (greedy; it may call the env's tools).
    #[arg(long, default_value_t = 2)]
    verifier_max_turns: usize,
    #[arg(long, default_value_t = 192)]
    verifier_max_tokens_per_turn: usize,
    /// Also write the table, with every way's per-task outcomes, as DIR/eval_prm.json, and
    /// every solution with its verdicts as DIR/trajectories.jsonl (`kaizen report DIR` shows
    /// both).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.eval;
    anyhow::ensure!(
        (2..1000).contains(&a.candidates) && a.episodes >= 1,
        "--candidates must be 2 to 999 (each task's solutions are seeded 1000 apart), --episodes at least 1"
    );
    anyhow::ensure!(args.verifier_max_turns >= 1, "--verifier-max-turns must be at least 1");
    let env = kaizen_envs::open(&a.env).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(!env.has_sessions(), "eval-prm judges whole solutions of tasks with answers; {} has none", a.env);
    let solver = Backend::open(&a.policy)?;
    let verifier = match &args.verifier {
        Some(spec) => Some(Backend::open(&PolicyArgs { policy: spec.clone(), ..a.policy.clone() })?),
        None => None,
    };
    let judge = verifier.as_ref().unwrap_or(&solver);
    let registry = ToolRegistry::standard();
    // Held out by content from what the training runs behind the policy and the verifier saw,
    // where they are runs' models; by seed alone otherwise.
    let (mut seen, runs) = trained_on(&[a.policy.policy.as_str(), args.verifier.as_deref().unwrap_or("")])?;
    // Nor a task whose worked solution every prompt shows (`--shots`).
    if a.prompt.shots > 0 {
        let from = match &a.prompt.shots_from {
            Some(spec) => Some(kaizen_envs::open(spec).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let from = from.as_deref().unwrap_or(env.as_ref());
        seen.extend(from.tasks(kaizen_rollout::episode::SHOT_SEED, 4 * a.prompt.shots).iter().map(|t| t.content_key()));
    }
    let tasks = kaizen_core::env::held_out_tasks(env.as_ref(), a.seed, a.episodes, |k| seen.contains(k), "--episodes")
        .map_err(anyhow::Error::msg)?;
    let solve = a.episode.config(a.prompt.shots(env.as_ref(), &registry)?, !a.prompt.no_tool_schemas, false);
    let judging = EpisodeArgs {
        max_turns: args.verifier_max_turns,
        max_tokens_per_turn: args.verifier_max_tokens_per_turn,
        max_episode_tokens: None,
        temperature: 0.0,
    }
    .config(Vec::new(), true, false);
    let venv = VerifierEnv::new(env.tool_names());
    let n = a.candidates;
    println!(
        "kaizen eval-prm — {} tasks of {} (seed {}), policy {}, verifier {}, N = {n}",
        tasks.len(),
        env.name(),
        a.seed,
        solver.policy().name(),
        judge.policy().name()
    );
    match runs.is_empty() {
        true => println!("held out by seed only (neither model is a training run's, whose tasks could be left out)"),
        false => println!(
            "held out by content: none of these is a task the training runs {} saw",
            runs.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
    let bar = ProgressBar::new((2 * n * tasks.len()) as u64)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}")?);
    bar.set_message("solving, then judging");
    let solving = Runner::new(solver.agent(), env.as_ref(), &registry, a.concurrency);
    let judging_runner = Runner::new(judge.agent(), &venv, &registry, a.concurrency);
    // `--out` is a run directory of its own: refused before anything runs if it holds one.
    let mut record = match &args.out {
        Some(dir) => Some(
            kaizen_rollout::RunDir::create(dir, &serde_json::json!({"verb": "eval-prm", "env": a.env, "seed": a.seed}))
                .map_err(|e| anyhow::anyhow!(e))?,
        ),
        None => None,
    };
    let (outcomes, solutions) =
        evaluate(&solving, &judging_runner, &tasks, n, &solve, &judging, a.seed, &mut || bar.inc(1));
    if let Some(run) = &mut record {
        for s in &solutions {
            run.append(s).map_err(|e| anyhow::anyhow!(e))?;
        }
    }
    bar.finish_and_clear();

    let ways: [(&str, fn(&TaskOutcome) -> bool); 4] = [
        ("verifier (PRM)", TaskOutcome::prm_solved),
        ("majority vote", TaskOutcome::majority_solved),
        ("random of N", TaskOutcome::random_solved),
        ("pass@N (oracle)", TaskOutcome::oracle_solved),
    ];
    let solved: Vec<Vec<bool>> = ways.iter().map(|(_, f)| outcomes.iter().map(f).collect()).collect();
    println!("{:<20} {:>9} {:>14} {:>30}", "selection", "success", "95% interval", "PRM vs it (paired Δ, 95%)");
    let mut rows = Vec::new();
    for ((name, _), s) in ways.iter().zip(&solved) {
        let diff = if *name == ways[0].0 { None } else { versus(&solved[0], Some(s)) };
        println!("{}", row_text(name, s, &versus_text(diff)));
        rows.push(row_json(name, s, &[("prm_vs", diff)]));
    }
    let (steps, unreadable) = outcomes.iter().fold((0, 0), |(s, u), o| (s + o.steps, u + o.unreadable));
    let right: usize = outcomes.iter().map(|o| o.right.iter().filter(|&&r| r).count()).sum();
    println!(
        "solutions right: {right} of {}; verifier steps judged: {steps}, unreadable: {unreadable} ({:.0}%)",
        n * outcomes.len(),
        100.0 * unreadable as f64 / steps.max(1) as f64
    );
    if unreadable == steps && steps > 0 {
        println!("the verifier wrote no readable verdict: its pick is the first solution (a verifier needs the format; see rl.process.verifier_examples)");
    }
    if let Some(dir) = &args.out {
        let doc = serde_json::json!({
            "env": env.name(), "policy": solver.policy().name(), "verifier": judge.policy().name(), "candidates": n,
            "seed": a.seed, "tasks": tasks.iter().map(|t| t.content_key()).collect::<Vec<_>>(), "rows": rows,
            "held_out_by_content": !runs.is_empty(),
            "steps": steps, "unreadable": unreadable,
        });
        write_table(dir, kaizen_report::EVAL_PRM, &doc)?;
    }
    Ok(())
}

/// The content of every task the training runs behind `specs` saw — a spec that is a model
/// file in a training run's directory (`policy.gguf`, `sft.gguf`, or a stage's of an evolve
/// run) — and those runs.
fn trained_on(specs: &[&str]) -> anyhow::Result<(HashSet<String>, Vec<PathBuf>)> {
    let mut seen = HashSet::new();
    let mut runs = Vec::new();
    for spec in specs {
        let Some(dir) = Path::new(spec).parent().filter(|d| spec.ends_with(".gguf") && d.join("config.json").is_file())
        else {
            continue;
        };
        if kaizen_rl::run_recipe(dir).is_ok() && !runs.contains(&dir.to_path_buf()) {
            seen.extend(kaizen_rl::trainer::trained_content(dir, &kaizen_envs::open)?);
            runs.push(dir.to_path_buf());
        }
    }
    Ok((seen, runs))
}
