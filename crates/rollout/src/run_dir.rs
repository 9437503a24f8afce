//! A run directory: `config.json` (the resolved settings), `trajectories.jsonl` (one line per
//! episode, appended and flushed as each ends, so a killed run loses nothing it recorded),
//! `images/` (each picture once, by content hash) and `summary.json`.

use kaizen_core::trajectory::{EpisodeEnd, Trajectory};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const TRAJECTORIES: &str = "trajectories.jsonl";

pub struct RunDir {
    pub path: PathBuf,
    out: File,
}

impl RunDir {
    /// Creates `path` for a new run; refuses to mix with an existing run's records.
    pub fn create(path: &Path, config: &serde_json::Value) -> Result<Self, String> {
        let traj = path.join(TRAJECTORIES);
        if traj.exists() {
            return Err(format!("{} already holds a run; choose another --out or remove it", path.display()));
        }
        std::fs::create_dir_all(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
        let cfg = serde_json::to_string_pretty(config).map_err(|e| e.to_string())?;
        kaizen_core::durable::write_atomic(&path.join("config.json"), cfg.as_bytes())
            .map_err(|e| format!("writing config.json: {e}"))?;
        Self::open(path)
    }

    /// Opens a run to append episodes (a new one after `create`, or a resumed training run).
    pub fn open(path: &Path) -> Result<Self, String> {
        let traj = path.join(TRAJECTORIES);
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&traj)
            .map_err(|e| format!("opening {}: {e}", traj.display()))?;
        Ok(RunDir { path: path.to_path_buf(), out })
    }

    /// Appends one episode and flushes it to the file; its pictures go to `images/`, once each
    /// (`image_store`).
    pub fn append(&mut self, t: &Trajectory) -> Result<(), String> {
        let stored = crate::image_store::store(&self.path, t)?;
        let line = serde_json::to_string(&stored).map_err(|e| e.to_string())?;
        writeln!(self.out, "{line}").and_then(|_| self.out.flush()).map_err(|e| format!("writing trajectory: {e}"))?;
        self.out.sync_data().map_err(|e| format!("syncing trajectory: {e}"))
    }

    /// Writes the run's episodes as `trajectories.parquet`, their pictures named by their files
    /// in `images/` as the JSONL lines name them (not embedded a second time).
    pub fn write_parquet(&self, ts: &[Trajectory]) -> Result<(), String> {
        let stored = ts.iter().map(|t| crate::image_store::store(&self.path, t)).collect::<Result<Vec<_>, _>>()?;
        crate::columnar::write_parquet(&stored, &self.path.join(crate::PARQUET_FILE))
    }

    pub fn write_summary(&self, s: &RunSummary) -> Result<(), String> {
        let text = serde_json::to_string_pretty(s).map_err(|e| e.to_string())?;
        kaizen_core::durable::write_atomic(&self.path.join("summary.json"), text.as_bytes())
            .map_err(|e| format!("writing summary.json: {e}"))
    }
}

/// Every complete episode recorded in a run directory. A last line cut short by a crash is
/// skipped; any other bad line (not UTF-8, not a trajectory) is an error naming the file and
/// the line.
/// Pictures are read back from `images/` (`image_store::resolve`).
pub fn load(path: &Path) -> Result<Vec<Trajectory>, String> {
    let mut ts: Vec<Trajectory> = kaizen_core::jsonl::read(&path.join(TRAJECTORIES)).map(|r| r.items)?;
    for t in &mut ts {
        crate::image_store::resolve(path, t)?;
    }
    Ok(ts)
}

/// The numbers `kaizen run` ends with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSummary {
    pub episodes: usize,
    pub success_rate: f64,
    /// Share of episodes with at least one tool call.
    pub tool_use_rate: f64,
    pub mean_turns: f64,
    /// Malformed calls over all attempted calls.
    pub malformed_call_rate: f64,
    /// Generated tokens per second of wall time, all episodes together (set by `timed`).
    pub tokens_per_second: f64,
    /// Episodes per second of wall time (set by `timed`).
    pub episodes_per_second: f64,
    /// Generated tokens per second of one episode's generation time (concurrent episodes
    /// share the model, so each is slower than the run as a whole).
    pub episode_tokens_per_second: f64,
    pub wall_seconds: f64,
    pub tool_latency_p50_ms: f64,
    pub tool_latency_p99_ms: f64,
    pub errors: usize,
    /// Wall time outside generation and tools, as a share of episode time.
    pub engine_overhead: f64,
    /// Local models: episodes whose shared prompt prefix was copied from the prefix cache, as
    /// a share of those that looked it up, and the prompt positions not computed again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_hit_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_tokens_saved: Option<usize>,
}

impl RunSummary {
    pub fn of(ts: &[Trajectory]) -> Self {
        let n = ts.len();
        if n == 0 {
            return RunSummary::default();
        }
        let nf = n as f64;
        let calls: usize = ts.iter().map(|t| t.tool_calls() + t.malformed_calls()).sum();
        let malformed: usize = ts.iter().map(Trajectory::malformed_calls).sum();
        let gen_ms: f64 = ts.iter().map(|t| t.timing.generation_ms).sum();
        let tool_ms: f64 = ts.iter().map(|t| t.timing.tool_ms).sum();
        let total_ms: f64 = ts.iter().map(|t| t.timing.total_ms).sum();
        let mut lat: Vec<f64> =
            ts.iter().flat_map(|t| t.turns.iter().flat_map(|u| u.observations.iter().map(|o| o.elapsed_ms))).collect();
        lat.sort_by(|a, b| a.total_cmp(b));
        let pct = |q: f64| if lat.is_empty() { 0.0 } else { lat[((lat.len() - 1) as f64 * q).round() as usize] };
        RunSummary {
            episodes: n,
            success_rate: ts.iter().filter(|t| t.solved()).count() as f64 / nf,
            tool_use_rate: ts.iter().filter(|t| t.tool_calls() + t.malformed_calls() > 0).count() as f64 / nf,
            mean_turns: ts.iter().map(|t| t.turns.len()).sum::<usize>() as f64 / nf,
            malformed_call_rate: if calls == 0 { 0.0 } else { malformed as f64 / calls as f64 },
            episode_tokens_per_second: if gen_ms > 0.0 {
                ts.iter().map(Trajectory::generated_tokens).sum::<usize>() as f64 / (gen_ms / 1e3)
            } else {
                0.0
            },
            tool_latency_p50_ms: pct(0.5),
            tool_latency_p99_ms: pct(0.99),
            errors: ts.iter().filter(|t| matches!(t.end, EpisodeEnd::Error { .. })).count(),
            engine_overhead: if total_ms > 0.0 { ((total_ms - gen_ms - tool_ms) / total_ms).max(0.0) } else { 0.0 },
            ..Default::default()
        }
    }

    /// Adds the run's throughput over `wall_seconds`, given the generated tokens.
    pub fn timed(mut self, ts: &[Trajectory], wall_seconds: f64) -> Self {
        if wall_seconds > 0.0 {
            self.wall_seconds = wall_seconds;
            self.episodes_per_second = ts.len() as f64 / wall_seconds;
            self.tokens_per_second = ts.iter().map(Trajectory::generated_tokens).sum::<usize>() as f64 / wall_seconds;
        }
        self
    }
}

/// One task kind's results (tasks grouped by `meta.task`, e.g. a MiniWoB task name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    pub task: String,
    pub episodes: usize,
    pub success_rate: f64,
    pub mean_reward: f64,
    pub errors: usize,
}

/// Results per task kind, in name order; empty when the tasks carry no `meta.task`.
pub fn per_task(ts: &[Trajectory]) -> Vec<TaskRow> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&Trajectory>> = Default::default();
    for t in ts {
        if let Some(name) = t.task.meta["task"].as_str() {
            groups.entry(name).or_default().push(t);
        }
    }
    groups
        .into_iter()
        .map(|(task, g)| {
            let n = g.len() as f64;
            TaskRow {
                task: task.to_string(),
                episodes: g.len(),
                success_rate: g.iter().filter(|t| t.solved()).count() as f64 / n,
                mean_reward: g.iter().map(|t| t.reward as f64).sum::<f64>() / n,
                errors: g.iter().filter(|t| matches!(t.end, EpisodeEnd::Error { .. })).count(),
            }
        })
        .collect()
}
