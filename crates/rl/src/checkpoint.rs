//! Checkpoints: everything a training run needs to continue exactly where it stopped — the
//! policy, the optimizer's moments and step count, the phase and step, and how far its record
//! files had got. There is no separate RNG state to save: every random draw (initialisation,
//! task streams, sampling seeds) is derived from the recipe's seed and the step number.
//!
//! Layout: `RUN/checkpoints/step-NAME/` holds `policy.safetensors` (the trainable weights:
//! all of `tiny`, or the LoRA adapters), `optimizer.safetensors` and
//! `progress.json`; `RUN/checkpoints/latest` names the newest complete one. A checkpoint is
//! written under a temporary name and renamed into place before `latest` (itself replaced by
//! rename) points at it, so a crash at any moment leaves the previous checkpoint intact.

use crate::error::{Result, RlError};
use crate::optim::AdamW;
use candle_core::{Device, Tensor};
use kaizen_models::trainable::TrainableLm;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Sft,
    Rl,
}

/// Where the run stands at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub phase: Phase,
    /// The first step of `phase` still to run.
    pub next_step: usize,
    pub optimizer_step: usize,
    /// Lengths of `metrics.jsonl` and `trajectories.jsonl` at the checkpoint; lines after
    /// them were written by steps that will run again, and are cut on resume.
    pub metrics_bytes: u64,
    pub trajectories_bytes: u64,
}

pub struct Checkpoint {
    pub policy: TrainableLm,
    pub moments: HashMap<String, Tensor>,
    pub progress: Progress,
}

const POLICY: &str = "policy.safetensors";

fn dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// An I/O failure while `doing` something to `path` (a checkpoint's steps fail for different
/// reasons: the verb says which).
fn io(doing: &str, path: &Path) -> impl FnOnce(std::io::Error) -> RlError {
    let (doing, path) = (doing.to_string(), path.to_path_buf());
    move |e| RlError::Run { path, what: format!("{doing}: {e}") }
}

/// Writes a checkpoint and makes it the latest; older ones are removed.
pub fn save(run: &Path, policy: &TrainableLm, opt: &AdamW, progress: &Progress) -> Result<()> {
    let root = dir(run);
    let name = format!("{}-{:06}", serde_json::to_value(progress.phase)?.as_str().unwrap_or("x"), progress.next_step);
    let partial = root.join(format!("{name}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(io("creating", &partial))?;
    policy.save_trainable(&partial.join(POLICY))?;
    candle_core::safetensors::save(&opt.moments()?, partial.join("optimizer.safetensors"))?;
    let json = serde_json::to_string_pretty(progress)?;
    std::fs::write(partial.join("progress.json"), json).map_err(io("writing", &partial))?;
    for f in [POLICY, "optimizer.safetensors", "progress.json"] {
        std::fs::File::open(partial.join(f)).and_then(|f| f.sync_all()).map_err(io("syncing", &partial))?;
    }
    let done = root.join(&name);
    let _ = std::fs::remove_dir_all(&done);
    std::fs::rename(&partial, &done).map_err(io(&format!("renaming to {}", done.display()), &partial))?;
    kaizen_core::durable::sync_dir(&root).map_err(io("syncing", &root))?;
    let latest = root.join("latest");
    kaizen_core::durable::write_atomic(&latest, name.as_bytes()).map_err(io("writing", &latest))?;
    // Only now is the previous checkpoint no longer needed.
    for e in std::fs::read_dir(&root).map_err(io("listing", &root))?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n != name && n != "latest" && e.path().is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

/// The latest checkpoint of `run` into `policy` (the run's recipe's initial policy), or `None`
/// when it has none.
pub fn load(run: &Path, policy: TrainableLm, dev: &Device) -> Result<Option<Checkpoint>> {
    let root = dir(run);
    let Ok(name) = std::fs::read_to_string(root.join("latest")) else { return Ok(None) };
    let at = root.join(name.trim());
    let progress_file = at.join("progress.json");
    let text = std::fs::read_to_string(&progress_file).map_err(io("reading", &progress_file))?;
    let progress: Progress = serde_json::from_str(&text).map_err(RlError::json(&progress_file))?;
    policy.load_trainable(&at.join(POLICY))?;
    let moments = candle_core::safetensors::load(at.join("optimizer.safetensors"), dev)?;
    Ok(Some(Checkpoint { policy, moments, progress }))
}

/// The trainable-weights file of `run`'s latest checkpoint, or `None` when it has none.
pub fn latest_policy(run: &Path) -> Result<Option<PathBuf>> {
    let root = dir(run);
    let Ok(name) = std::fs::read_to_string(root.join("latest")) else { return Ok(None) };
    let file = root.join(name.trim()).join(POLICY);
    if !file.is_file() {
        let what = format!("names a checkpoint without {POLICY}");
        return Err(RlError::Run { path: root.join("latest"), what });
    }
    Ok(Some(file))
}
