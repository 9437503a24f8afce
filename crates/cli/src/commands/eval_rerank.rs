//! `kaizen eval-rerank`: the Best-of-Q table on held-out tasks — the policy alone (greedy and
//! sampled), the same N candidates picked at random, by log-prob and by the Q-function, and
//! pass@N over N independent episodes — each a success rate with its 95% Wilson interval, and
//! each row after the first two beside the sampled policy as a paired difference on the same
//! tasks with its 95% paired-bootstrap interval (`kaizen_q::metrics::paired_difference`); Best-of-Q also beside
//! the random pick of the same N.
//!
//! pass@N over independent episodes is not an upper bound for step-wise selection: picking the
//! best of N actions at every step of one episode can solve tasks that none of N whole
//! episodes solved.

use super::held_out_eval::{row_json, row_text, versus, versus_text, write_table, EvalArgs};
use super::policy::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use kaizen_rollout::rerank::Selector;
use kaizen_rollout::runner::Runner;
use kaizen_rollout::selection_eval::{best_of_q_rows, run_row};
use kaizen_rollout::EpisodeConfig;
use kaizen_tools::ToolRegistry;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    eval: EvalArgs,
    /// The Q-function (`kaizen q train`).
    #[arg(long, value_name = "Q.safetensors")]
    q: PathBuf,
    /// Also write the table, with every row's per-task outcomes, as DIR/eval_rerank.json
    /// (`kaizen report DIR` shows it).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let a = &args.eval;
    anyhow::ensure!(a.candidates >= 2 && a.episodes >= 1, "--candidates must be at least 2, --episodes at least 1");
    let env = kaizen_envs::open(&a.env).map_err(anyhow::Error::msg)?;
    let backend = Backend::open(&a.policy)?;
    let policy = backend.policy();
    let agent = backend.agent();
    let scorer = kaizen_q::scorer::QScorer::load(&args.q)?;
    let registry = ToolRegistry::standard();
    let seen = scorer.trained_on();
    let tasks = kaizen_core::env::held_out_tasks(env.as_ref(), a.seed, a.episodes, |k| seen.contains(k), "--episodes")
        .map_err(anyhow::Error::msg)?;
    let n = a.candidates;
    let sampled = a.episode.config(a.prompt.shots(env.as_ref(), &registry)?, !a.prompt.no_tool_schemas, false);
    let greedy = EpisodeConfig { temperature: 0.0, ..sampled.clone() };
    let q = Selector::Scored(&scorer);
    let rows = best_of_q_rows(&greedy, &sampled, n, &q);
    let total: usize = rows.iter().map(|r| r.episodes_per_task * tasks.len()).sum();
    let bar = ProgressBar::new(total as u64)
        .with_style(ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed} < {eta}] {msg}")?);
    // Each row prints as soon as it is done: a long evaluation shows its results as it goes.
    bar.suspend(|| {
        println!(
            "kaizen eval-rerank — {} held-out tasks of {}, policy {}, N = {n}, Q = {}",
            tasks.len(),
            env.name(),
            policy.name(),
            args.q.display()
        );
        if seen.is_empty() || env.has_sessions() {
            println!(
                "held out by seed only (the Q-function carries no list of training tasks, or tasks are web pages)"
            );
        } else {
            println!(
                "held out by content: none of these is one of the {} tasks in the run directories the Q-function was trained on",
                seen.len()
            );
        }
        println!("{:<20} {:>9} {:>14} {:>30}", "selection", "success", "95% interval", "vs sampled (paired Δ, 95%)");
    });
    let mut table = Vec::new();
    let mut rows_json: Vec<serde_json::Value> = Vec::new();
    // Each finished row's per-task outcomes: [greedy, sampled, random of N, …].
    let mut per_row: Vec<Vec<bool>> = Vec::new();
    let runner = Runner { agent, env: env.as_ref(), registry: &registry, slots: a.concurrency };
    for row in &rows {
        let name = row.name;
        bar.set_message(name.to_string());
        let outcome = run_row(&runner, &tasks, a.seed, row, &mut |_| bar.inc(1));
        let (k, kinds) = (outcome.successes(), outcome.kinds);
        // Per-task outcomes in task order, for paired differences.
        let outcomes = outcome.solved;
        let vs_sampled = if per_row.len() >= 2 { versus(&outcomes, per_row.get(1)) } else { None };
        let vs_random = if name == "Best-of-Q" { versus(&outcomes, per_row.get(2)) } else { None };
        bar.suspend(|| println!("{}", row_text(name, &outcomes, &versus_text(vs_sampled))));
        if name == "Best-of-Q" {
            bar.suspend(|| {
                println!("{:<20} {:>9} {:>14} {:>30}", "  … vs random of N", "", "", versus_text(vs_random))
            });
        }
        rows_json.push(row_json(name, &outcomes, &[("vs_sampled", vs_sampled), ("vs_random", vs_random)]));
        table.push((name, k, outcomes.len(), kinds));
        per_row.push(outcomes);
    }
    bar.finish_and_clear();
    if let Some(dir) = &args.out {
        let doc = serde_json::json!({
            "env": env.name(), "policy": policy.name(), "q": args.q.display().to_string(), "candidates": n,
            "held_out_by_content": !seen.is_empty() && !env.has_sessions(),
            "tasks": tasks.iter().map(|t| t.content_key()).collect::<Vec<_>>(), "rows": rows_json,
        });
        write_table(dir, kaizen_report::EVAL_RERANK, &doc)?;
    }
    // Per task kind, when the env has several (MiniWoB suites).
    let kinds: Vec<String> = table.first().map(|t| t.3.keys().cloned().collect()).unwrap_or_default();
    if kinds.len() > 1 {
        print!("\n{:<24}", "task");
        for (name, ..) in &table {
            print!(" {:>17}", name);
        }
        println!();
        for kind in kinds {
            print!("{kind:<24}");
            for (_, _, _, per) in &table {
                let (ok, n) = per.get(&kind).copied().unwrap_or((0, 0));
                print!(" {:>17}", format!("{ok}/{n}"));
            }
            println!();
        }
    }
    Ok(())
}
