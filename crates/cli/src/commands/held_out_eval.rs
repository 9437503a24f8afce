//! What `eval-rerank` and `eval-prm` share: the options of a held-out evaluation (env, policy,
//! N, tasks, seed, episode settings, prompt), and its table — each way of picking as a success
//! rate with its 95% Wilson interval, beside a baseline as a paired difference on the same
//! tasks with its 95% paired-bootstrap interval — printed, and written for `kaizen report`.

use super::policy::{PolicyArgs, PromptArgs};
use kaizen_q::metrics::{paired_difference, wilson_interval};
use kaizen_rollout::EpisodeArgs;
use std::path::Path;

#[derive(clap::Args, Debug)]
#[command(mut_arg("temperature", |a| a.default_value("1")))]
pub struct EvalArgs {
    #[arg(long, default_value = "arith")]
    pub env: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// N: candidates (solutions) per task.
    #[arg(long, default_value_t = 8)]
    pub candidates: usize,
    /// Held-out tasks, from the stream of `--seed`, skipping every task whose content the
    /// Q-function (eval-rerank) or the training runs behind the models (eval-prm) were trained on.
    #[arg(long, default_value_t = 50)]
    pub episodes: usize,
    #[arg(long, default_value_t = 5000)]
    pub seed: u64,
    /// Turns, tokens and the sampling temperature of the candidates (1.0 unless told).
    #[command(flatten)]
    pub episode: EpisodeArgs,
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    #[command(flatten)]
    pub prompt: PromptArgs,
}

/// A paired difference `(d, lo, hi)` of `solved` over `base` (`None` without a base, or when
/// the two are not comparable).
pub fn versus(solved: &[bool], base: Option<&Vec<bool>>) -> Option<(f64, f64, f64)> {
    base.and_then(|b| paired_difference(solved, b))
}

/// A paired difference as the table shows it, in points; empty where there is none.
pub fn versus_text(diff: Option<(f64, f64, f64)>) -> String {
    diff.map_or(String::new(), |(d, lo, hi)| {
        format!("{:+.1} pts ({:+.1} to {:+.1})", 100.0 * d, 100.0 * lo, 100.0 * hi)
    })
}

/// A paired difference as the written table holds it (`kaizen report` reads it).
pub fn versus_json(diff: Option<(f64, f64, f64)>) -> serde_json::Value {
    diff.map_or(serde_json::Value::Null, |(d, lo, hi)| serde_json::json!({"difference": d, "lo": lo, "hi": hi}))
}

/// One way's row as the table prints it: its name, success rate, interval and `versus` text.
pub fn row_text(name: &str, solved: &[bool], versus: &str) -> String {
    let k = solved.iter().filter(|&&x| x).count();
    let (lo, hi) = wilson_interval(k, solved.len(), 1.96);
    format!(
        "{name:<20} {:>9} {:>14} {versus:>30}",
        format!("{:.1}%", 100.0 * k as f64 / solved.len().max(1) as f64),
        format!("{:.1}–{:.1}%", 100.0 * lo, 100.0 * hi)
    )
}

/// One way's row in the written table: successes, tasks, interval, per-task outcomes, and each
/// named paired difference.
pub fn row_json(name: &str, solved: &[bool], diffs: &[(&str, Option<(f64, f64, f64)>)]) -> serde_json::Value {
    let k = solved.iter().filter(|&&x| x).count();
    let (lo, hi) = wilson_interval(k, solved.len(), 1.96);
    let mut row = serde_json::json!({
        "selection": name, "successes": k, "tasks": solved.len(), "lo": lo, "hi": hi, "solved": solved,
    });
    for (key, d) in diffs {
        row[*key] = versus_json(*d);
    }
    row
}

/// Writes the table as `dir/file` (atomically), and says where.
pub fn write_table(dir: &Path, file: &str, doc: &serde_json::Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let path = dir.join(file);
    kaizen_core::durable::write_atomic(&path, serde_json::to_string_pretty(doc)?.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    println!("table written to {}", path.display());
    Ok(())
}
