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

use super::policy::{Backend, PolicyArgs, PromptArgs};
use indicatif::{ProgressBar, ProgressStyle};
use kaizen_q::metrics::{paired_difference, wilson_interval};
use kaizen_rollout::rerank::Selector;
use kaizen_rollout::runner::Runner;
use kaizen_rollout::selection_eval::{best_of_q_rows, run_row};
use kaizen_rollout::{EpisodeArgs, EpisodeConfig};
use kaizen_tools::ToolRegistry;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(mut_arg("temperature", |a| a.default_value("1")))]
pub struct Args {
    #[arg(long, default_value = "arith")]
    env: String,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The Q-function (`kaizen q train`).
    #[arg(long, value_name = "Q.safetensors")]
    q: PathBuf,
    #[arg(long, default_value_t = 8)]
    candidates: usize,
    /// Held-out tasks: drawn from the stream of `--seed`, skipping every task whose content the
    /// Q-function was trained on (the list it carries).
    #[arg(long, default_value_t = 50)]
    episodes: usize,
    #[arg(long, default_value_t = 5000)]
    seed: u64,
    /// Turns, tokens and the sampling temperature of the candidates and of the sampled baseline
    /// (1.0 unless told).
    #[command(flatten)]
    episode: EpisodeArgs,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[command(flatten)]
    prompt: PromptArgs,
    /// Also write the table, with every row's per-task outcomes, as DIR/eval_rerank.json
    /// (`kaizen report DIR` shows it).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.candidates >= 2 && a.episodes >= 1, "--candidates must be at least 2, --episodes at least 1");
    let env = kaizen_envs::open(&a.env).map_err(anyhow::Error::msg)?;
    let backend = Backend::open(&a.policy)?;
    let policy = backend.policy();
    let agent = backend.agent();
    let scorer = kaizen_q::scorer::QScorer::load(&a.q)?;
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
            a.q.display()
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
        let (lo, hi) = wilson_interval(k, outcomes.len(), 1.96);
        let rate = format!("{:.1}%", 100.0 * k as f64 / outcomes.len().max(1) as f64);
        let versus = |base: Option<&Vec<bool>>| match base.and_then(|b| paired_difference(&outcomes, b)) {
            Some((d, lo, hi)) => format!("{:+.1} pts ({:+.1} to {:+.1})", 100.0 * d, 100.0 * lo, 100.0 * hi),
            None => String::new(),
        };
        let vs_sampled = if per_row.len() >= 2 { versus(per_row.get(1)) } else { String::new() };
        bar.suspend(|| {
            println!("{name:<20} {rate:>9} {:>14} {vs_sampled:>30}", format!("{:.1}–{:.1}%", 100.0 * lo, 100.0 * hi))
        });
        if name == "Best-of-Q" {
            let vs_random = versus(per_row.get(2));
            bar.suspend(|| println!("{:<20} {:>9} {:>14} {vs_random:>30}", "  … vs random of N", "", ""));
        }
        let pair = |base: Option<&Vec<bool>>| {
            base.and_then(|b| paired_difference(&outcomes, b))
                .map(|(d, lo, hi)| serde_json::json!({"difference": d, "lo": lo, "hi": hi}))
        };
        rows_json.push(serde_json::json!({
            "selection": name, "successes": k, "tasks": outcomes.len(), "lo": lo, "hi": hi, "solved": outcomes,
            "vs_sampled": if per_row.len() >= 2 { pair(per_row.get(1)) } else { None },
            "vs_random": if name == "Best-of-Q" { pair(per_row.get(2)) } else { None },
        }));
        table.push((name, k, outcomes.len(), kinds));
        per_row.push(outcomes);
    }
    bar.finish_and_clear();
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
        let doc = serde_json::json!({
            "env": env.name(), "policy": policy.name(), "q": a.q.display().to_string(), "candidates": n,
            "held_out_by_content": !seen.is_empty() && !env.has_sessions(),
            "tasks": tasks.iter().map(|t| t.content_key()).collect::<Vec<_>>(), "rows": rows_json,
        });
        let path = dir.join(kaizen_report::EVAL_RERANK);
        kaizen_core::durable::write_atomic(&path, serde_json::to_string_pretty(&doc)?.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        println!("table written to {}", path.display());
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
