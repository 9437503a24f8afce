//! `kaizen compare runs/A runs/B …`: the training diagnostics of several runs side by side —
//! where each ended, held-out success over the course of training, and each run's final
//! held-out greedy pass@1 paired with the first run's on the tasks both evaluated (by content,
//! `eval_tasks.json`), with a 95% paired-bootstrap interval.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run directories written by `kaizen train`.
    #[arg(required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
}

/// The `metrics.jsonl` lines of one run (a torn last line, from a run killed mid-write, is
/// skipped; any other bad line is an error naming it).
fn load(run: &std::path::Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let path = run.join("metrics.jsonl");
    anyhow::ensure!(path.exists(), "{} has no metrics.jsonl (is it a run directory of `kaizen train`?)", run.display());
    Ok(kaizen_core::jsonl::read(&path).map_err(anyhow::Error::msg)?.items)
}

fn mean(lines: &[&serde_json::Value], key: &str) -> Option<f64> {
    let v: Vec<f64> = lines.iter().filter_map(|m| m[key].as_f64()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let runs = a.runs.iter().map(|r| load(r)).collect::<anyhow::Result<Vec<_>>>()?;
    let names: Vec<String> = a.runs.iter().map(|r| r.display().to_string()).collect();
    let width = names.iter().map(String::len).max().unwrap_or(8).max(10);
    let header = |first: &str| {
        print!("{first:<28}");
        for n in &names {
            print!(" {n:>width$}");
        }
        println!();
    };
    let cell = |x: Option<f64>, digits: usize| x.map_or("—".to_string(), |v| format!("{v:.digits$}"));
    header("final (last RL step / eval)");
    type Row = (&'static str, &'static str, &'static str, usize);
    let rows: [Row; 13] = [
        ("held-out pass@1 (greedy)", "eval", "pass_at_1", 3),
        ("held-out pass@1 (sampled)", "eval", "reward", 3),
        ("held-out pass@k", "eval", "pass_at_k", 3),
        ("training reward", "rl", "reward", 3),
        ("tool-use rate", "rl", "tool_use_rate", 3),
        ("all-wrong tool subgroups", "rl", "all_wrong_tool_rate", 3),
        ("zero-advantage rows", "rl", "zero_advantage_rate", 3),
        ("KL to reference", "rl", "kl", 5),
        ("clip fraction", "rl", "clip_fraction", 3),
        ("sampling entropy (nats)", "rl", "entropy", 3),
        ("|log π_old − log π_behav|", "rl", "behaviour_gap", 5),
        ("response tokens", "rl", "response_tokens", 1),
        ("SFT loss", "sft", "loss", 3),
    ];
    for (label, phase, key, digits) in rows {
        print!("{label:<28}");
        for r in &runs {
            let line = r.iter().rev().find(|m| m["phase"] == phase);
            let last = line.and_then(|m| m[key].as_f64());
            // A run with β = 0 measures no KL: its lines carry none.
            let shown = if key == "kl" && line.is_some() && last.is_none() { "off".into() } else { cell(last, digits) };
            print!(" {shown:>width$}");
        }
        println!();
    }
    // Totals over all RL steps: how much AXPO resampled, and what it recovered.
    for (label, key) in [
        ("rollouts (total)", "rollouts"),
        ("AXPO prefixes resampled", "axpo_prefixes"),
        ("AXPO prefixes recovered", "axpo_recovered"),
    ] {
        print!("{label:<28}");
        for r in &runs {
            let total: f64 = r.iter().filter(|m| m["phase"] == "rl").filter_map(|m| m[key].as_f64()).sum();
            print!(" {:>width$}", format!("{total:.0}"));
        }
        println!();
    }
    for (label, phase, key) in [
        ("generation tokens/s (mean)", "rl", "generation_tokens_per_s"),
        ("training tokens/s (mean)", "rl", "train_tokens_per_s"),
    ] {
        print!("{label:<28}");
        for r in &runs {
            let lines: Vec<&serde_json::Value> = r.iter().filter(|m| m["phase"] == phase).collect();
            print!(" {:>width$}", cell(mean(&lines, key), 0));
        }
        println!();
    }
    println!();
    // Over time: greedy pass@1 / sampled pass@1 (mean success of the k samples) / pass@k.
    let width = width.max(17);
    let header = |first: &str| {
        print!("{first:<28}");
        for n in &names {
            print!(" {n:>width$}");
        }
        println!();
    };
    header("held-out at RL step");
    println!("  (greedy / sampled / @k)");
    let mut steps: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        for m in r.iter().filter(|m| m["phase"] == "eval") {
            let Some(step) = m["step"].as_u64() else { continue };
            let [g, s, k] = ["pass_at_1", "reward", "pass_at_k"].map(|key| cell(m[key].as_f64(), 3));
            steps.entry(step).or_insert_with(|| vec!["—".into(); runs.len()])[i] = format!("{g} / {s} / {k}");
        }
    }
    for (step, vals) in steps {
        print!("{step:<28}");
        for v in vals {
            print!(" {v:>width$}");
        }
        println!();
    }
    if runs.len() >= 2 {
        println!();
        println!("final held-out greedy pass@1, each run paired with {} on the tasks both evaluated", names[0]);
        println!("(difference in points, 95% paired-bootstrap interval):");
        let finals: Vec<Option<Vec<(String, bool)>>> =
            a.runs.iter().zip(&runs).map(|(dir, r)| final_outcomes(dir, r)).collect();
        for (i, name) in names.iter().enumerate().skip(1) {
            let line = match (&finals[0], &finals[i]) {
                (Some(base), Some(mine)) => {
                    // By content and occurrence: the n-th task with a given content in one run
                    // pairs with the n-th in the other (session envs can repeat a task's text).
                    let mine: BTreeMap<(&str, usize), bool> = numbered(mine).into_iter().collect();
                    let (b, m): (Vec<bool>, Vec<bool>) =
                        numbered(base).into_iter().filter_map(|(k, s)| Some((s, *mine.get(&k)?))).unzip();
                    match kaizen_q::metrics::paired_difference(&m, &b) {
                        Some((d, lo, hi)) => format!(
                            "{:+.1} pts ({:+.1} to {:+.1}) on {} shared tasks",
                            100.0 * d,
                            100.0 * lo,
                            100.0 * hi,
                            b.len()
                        ),
                        None => format!("— ({} shared held-out tasks; at least 2 needed)", b.len()),
                    }
                }
                _ => "— (no per-task outcomes: a run from before eval_tasks.json)".into(),
            };
            println!("  {name:<width$}  {line}");
        }
    }
    Ok(())
}

/// Each `(key, solved)` with the key's occurrence number among those before it.
fn numbered(outcomes: &[(String, bool)]) -> Vec<((&str, usize), bool)> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    outcomes
        .iter()
        .map(|(k, s)| {
            let n = seen.entry(k.as_str()).or_default();
            *n += 1;
            ((k.as_str(), *n), *s)
        })
        .collect()
}

/// A run's last evaluation as (task content, solved greedily), from `eval_tasks.json` and the
/// last eval line's `greedy_solved`; `None` when the run has not both (an older run).
fn final_outcomes(dir: &std::path::Path, lines: &[serde_json::Value]) -> Option<Vec<(String, bool)>> {
    let keys: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join(kaizen_rl::trainer::EVAL_TASKS)).ok()?).ok()?;
    let solved: Vec<bool> = lines
        .iter()
        .rev()
        .find(|m| m["phase"] == "eval")?
        .get("greedy_solved")?
        .as_array()?
        .iter()
        .map(|v| v.as_bool())
        .collect::<Option<_>>()?;
    (keys.len() == solved.len()).then(|| keys.into_iter().zip(solved).collect())
}
