//! Run reports: `kaizen report RUN … --out report.html` writes one self-contained HTML file —
//! training curves from `metrics.jsonl` (several runs overlaid, a smoothing control), the
//! evaluation tables a run directory holds (`summary.json` and per-task success of `kaizen
//! run`), and a trajectory browser over `trajectories.jsonl` (filters, transcripts with tool
//! calls, observations and images, candidate sets with their scores, per-token log-probs as a
//! heat-map). No network: the style and script are inlined from `assets/`, the charts are SVG
//! drawn here (`svg`), images are the data URLs the trajectories carry.
//!
//! The episodes travel compressed (`page::packed`); `kaizen report --serve` adds a script that
//! reloads the page as the records grow; PNG plots are drawn by the CLI through headless
//! Chromium. `kaizen evolve`'s per-iteration table (`evolution.jsonl`) shows beside the stage
//! runs; the Best-of-Q table of `kaizen eval-rerank --out DIR` (`eval_rerank.json`) and the
//! PRM table of `kaizen eval-prm --out DIR` (`eval_prm.json`) show too.

pub mod page;
pub mod svg;

use kaizen_core::Trajectory;
use std::path::{Path, PathBuf};

/// What a report reads of one run directory.
#[derive(Debug, Clone)]
pub struct Run {
    /// How the run is named in legends and filters (its directory's name; `load_runs` makes
    /// names unique).
    pub name: String,
    pub path: PathBuf,
    /// `metrics.jsonl` lines (empty for runs of `kaizen run`).
    pub metrics: Vec<serde_json::Value>,
    pub trajectories: Vec<Trajectory>,
    /// `summary.json`, when the run wrote one.
    pub summary: Option<serde_json::Value>,
    /// `eval_rerank.json` (`kaizen eval-rerank --out`), when there is one.
    pub best_of_q: Option<serde_json::Value>,
    /// `eval_prm.json` (`kaizen eval-prm --out`), when there is one.
    pub prm: Option<serde_json::Value>,
    /// `evolution.jsonl` lines (`kaizen evolve`: one per iteration), empty for other runs.
    pub evolution: Vec<serde_json::Value>,
    /// What the reader should know: torn last lines skipped, missing files.
    pub warnings: Vec<String>,
}

/// Reads a run directory. A torn last line of a record file (a killed run) is skipped with a
/// warning; any other malformed line is an error naming the file and line.
pub fn load_run(dir: &Path) -> Result<Run, String> {
    let mut warnings = Vec::new();
    let metrics_path = dir.join("metrics.jsonl");
    let traj_path = dir.join(kaizen_rollout::run_dir::TRAJECTORIES);
    let best_of_q_path = dir.join(EVAL_RERANK);
    let evolution_path = dir.join(EVOLUTION);
    let prm_path = dir.join(EVAL_PRM);
    if [&metrics_path, &traj_path, &best_of_q_path, &evolution_path, &prm_path].iter().all(|p| !p.exists()) {
        return Err(format!(
            "{} holds none of metrics.jsonl, trajectories.jsonl, {EVAL_RERANK}, {EVAL_PRM}, {EVOLUTION}: not a run directory",
            dir.display()
        ));
    }
    let evolution = records::<serde_json::Value>(&evolution_path, &mut warnings)?;
    let metrics = records::<serde_json::Value>(&metrics_path, &mut warnings)?;
    let mut trajectories = records::<Trajectory>(&traj_path, &mut warnings)?;
    // A picture missing from `images/` (a copied run without it) is a warning: the episode
    // still shows, the picture as its file name.
    for t in &mut trajectories {
        if let Err(e) = kaizen_rollout::image_store::resolve(dir, t) {
            warnings.push(format!("{}: episode {}: {e}", dir.display(), t.episode_id));
        }
    }
    let mut json_file = |path: &Path| match std::fs::read_to_string(path) {
        Err(_) => None,
        Ok(text) => match serde_json::from_str(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                warnings.push(format!("{}: not valid JSON ({e}); its table is left out", path.display()));
                None
            }
        },
    };
    let summary = json_file(&dir.join("summary.json"));
    let best_of_q = json_file(&best_of_q_path);
    let prm = json_file(&prm_path);
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    Ok(Run { name, path: dir.to_path_buf(), metrics, trajectories, summary, best_of_q, prm, evolution, warnings })
}

/// The records of a JSON-lines file (none when it is absent), a torn last line noted in
/// `warnings`; any other bad line an error naming the file and line.
fn records<T: serde::de::DeserializeOwned>(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<T>, String> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let r = kaizen_core::jsonl::read::<T>(path)?;
    if let Some(line) = r.torn {
        warnings
            .push(format!("{} line {line}: cut short (the run was killed while writing it); skipped", path.display()));
    }
    Ok(r.items)
}

/// Every run of `dirs` (`load_run`), named by directory; where two share a name, by path.
pub fn load_runs(dirs: &[PathBuf]) -> Result<Vec<Run>, String> {
    let mut runs = dirs.iter().map(|d| load_run(d)).collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    for r in &mut runs {
        if names.iter().filter(|n| **n == r.name).count() > 1 {
            r.name = r.path.display().to_string();
        }
    }
    Ok(runs)
}

/// The per-iteration record of `kaizen evolve`.
pub const EVOLUTION: &str = "evolution.jsonl";

/// The file `kaizen eval-rerank --out DIR` writes its table to.
pub const EVAL_RERANK: &str = "eval_rerank.json";

/// The file `kaizen eval-prm --out DIR` writes its table to.
pub const EVAL_PRM: &str = "eval_prm.json";

/// One chart of the report: a metric of one phase of `metrics.jsonl`.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub label: &'static str,
    pub phase: &'static str,
    pub key: &'static str,
}

const fn m(label: &'static str, phase: &'static str, key: &'static str) -> Metric {
    Metric { label, phase, key }
}

/// Every curve a report draws, in order (a run without a metric draws no line for it).
pub const METRICS: [Metric; 18] = [
    m("held-out pass@1 (greedy)", "eval", "pass_at_1"),
    m("held-out pass@1 (sampled)", "eval", "reward"),
    m("held-out pass@k", "eval", "pass_at_k"),
    m("training reward", "rl", "reward"),
    m("tool-use rate", "rl", "tool_use_rate"),
    m("all-wrong tool subgroups", "rl", "all_wrong_tool_rate"),
    m("zero-advantage share", "rl", "zero_advantage_rate"),
    m("KL to reference", "rl", "kl"),
    m("clip fraction", "rl", "clip_fraction"),
    m("sampling entropy (nats)", "rl", "entropy"),
    m("|log π_old − log π_behav|", "rl", "behaviour_gap"),
    m("PPO loss", "rl", "loss"),
    m("gradient norm", "rl", "grad_norm"),
    m("response tokens", "rl", "response_tokens"),
    m("generation tokens/s", "rl", "generation_tokens_per_s"),
    m("AXPO recovered prefixes", "rl", "axpo_recovered"),
    m("SFT loss", "sft", "loss"),
    m("SFT check pass@1 (greedy)", "sft", "pass_at_1"),
];

/// The charts of `runs`: `(metric key as a file name, SVG)` for every metric some run has.
pub fn charts(runs: &[Run]) -> Vec<(String, String)> {
    METRICS
        .iter()
        .filter_map(|metric| {
            let series: Vec<svg::Series> = runs
                .iter()
                .enumerate()
                .map(|(i, r)| svg::Series {
                    name: r.name.clone(),
                    colour: i,
                    points: r
                        .metrics
                        .iter()
                        .filter(|l| l["phase"] == metric.phase)
                        .filter_map(|l| Some((l["step"].as_f64()?, l[metric.key].as_f64()?)))
                        .collect(),
                })
                .collect();
            let chart = svg::line_chart(metric.label, &series)?;
            Some((format!("{}-{}", metric.phase, metric.key), chart))
        })
        .collect()
}
