//! `shape-grid`: visual questions that need a closer look. A scene is a 3×3 grid of easy-VQA
//! pictures (64×64 each, one shape apiece), shown to the policy shrunk 8 times — 24×24 pixels,
//! 8 per cell, too few to tell a circle from a triangle — and the question asks which shape one
//! cell holds. The image tools (`crop`, `zoom`, `rotate`) show any box of the full 192×192
//! scene, so an agent that zooms can read the cell. Exact checker (the shape's name, any case).
//!
//! Data: the `easy-vqa` wheel (MIT), installed by `scripts/setup.sh` into
//! `$KAIZEN_HOME/easy-vqa`. Its `train` pictures make `shape-grid` (or `shape-grid:train`), its
//! `test` pictures `shape-grid:test`: different files, so scenes of the two never share a cell
//! picture (a test checks it by content hash). A cell's shape is the answer easy-VQA gives to its
//! shape questions; pictures without one are not used.

pub mod agents;
pub mod cell;

use crate::ANSWER_FORMAT;
use image::RgbImage;
use kaizen_core::{Checker, Env, EnvSession, Observation, SessionStatus, Task, ToolCall, ToolSpec};
use kaizen_tools::image::{decode, ops, png_url, ImageTools};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Side of one easy-VQA picture.
pub const CELL: u32 = 64;
/// Cells per side of a scene.
pub const GRID: u32 = 3;
/// How many times smaller than the scene the policy is shown it.
pub const SHRINK: u32 = 8;
/// The shapes easy-VQA draws.
pub const SHAPES: [&str; 3] = ["circle", "rectangle", "triangle"];

pub fn data_root() -> PathBuf {
    kaizen_core::home::kaizen_home().join("easy-vqa")
}

/// One labelled easy-VQA picture.
struct Cell {
    id: u64,
    shape: &'static str,
    pixels: RgbImage,
    /// Content hash of the picture as kaizen encodes it (the held-out check compares these).
    hash: String,
}

pub struct ShapeGrid {
    name: String,
    split: &'static str,
    cells: Arc<Vec<Cell>>,
    by_id: HashMap<u64, usize>,
}

impl ShapeGrid {
    /// `shape-grid`, `shape-grid:train` or `shape-grid:test`, read from `data_root()`.
    pub fn open(spec: &str) -> Result<ShapeGrid, String> {
        let split = match spec {
            "shape-grid" | "shape-grid:train" => "train",
            "shape-grid:test" => "test",
            _ => {
                return Err(format!(
                    "unknown shape-grid split in '{spec}' (shape-grid, shape-grid:train, shape-grid:test)"
                ))
            }
        };
        Self::open_dir(spec, split, &data_root().join(split))
    }

    fn open_dir(name: &str, split: &'static str, dir: &Path) -> Result<ShapeGrid, String> {
        let questions = dir.join("questions.json");
        let text = std::fs::read_to_string(&questions).map_err(|e| {
            format!("{}: {e} (run scripts/setup.sh; it installs the easy-vqa wheel)", questions.display())
        })?;
        let rows: Vec<(String, String, u64)> =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", questions.display()))?;
        let mut shape_of: Vec<(u64, &'static str)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (_, answer, id) in &rows {
            if let Some(shape) = SHAPES.iter().find(|s| *s == answer) {
                if seen.insert(*id) {
                    shape_of.push((*id, shape));
                }
            }
        }
        shape_of.sort();
        let cells = shape_of
            .into_iter()
            .map(|(id, shape)| {
                let path = dir.join("images").join(format!("{id}.png"));
                let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                let pixels = decode("image/png", &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                if pixels.dimensions() != (CELL, CELL) {
                    return Err(format!("{} is {:?}, not {CELL}×{CELL}", path.display(), pixels.dimensions()));
                }
                let hash = kaizen_core::image::content_hash(
                    &png_url(&pixels).map_err(|e| format!("{}: {e}", path.display()))?,
                );
                Ok(Cell { id, shape, pixels, hash })
            })
            .collect::<Result<Vec<_>, String>>()?;
        if cells.len() < (GRID * GRID) as usize {
            return Err(format!("{}: only {} labelled pictures", dir.display(), cells.len()));
        }
        let by_id = cells.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        Ok(ShapeGrid { name: name.to_string(), split, cells: Arc::new(cells), by_id })
    }

    /// The full-resolution scene of the cells `ids` (row by row).
    fn scene(&self, ids: &[u64]) -> Result<RgbImage, String> {
        let cells: Vec<&Cell> = ids
            .iter()
            .map(|id| self.by_id.get(id).map(|&i| &self.cells[i]).ok_or(format!("no picture {id} in {}", self.split)))
            .collect::<Result<_, _>>()?;
        if cells.len() != (GRID * GRID) as usize {
            return Err(format!("a scene needs {} cells, got {}", GRID * GRID, cells.len()));
        }
        Ok(scene_of(&cells))
    }

    /// The content hash of each picture of the split (for the held-out check).
    pub fn picture_hashes(&self) -> Vec<String> {
        self.cells.iter().map(|c| c.hash.clone()).collect()
    }
}

/// The full-resolution scene of nine cells (row by row).
fn scene_of(cells: &[&Cell]) -> RgbImage {
    RgbImage::from_fn(GRID * CELL, GRID * CELL, |x, y| {
        *cells[((y / CELL) * GRID + x / CELL) as usize].pixels.get_pixel(x % CELL, y % CELL)
    })
}

/// A task showing `picture` whose answer is `shape` (any case). A picture this small always
/// encodes; were it ever refused, the task says why and shows none (an agent then answers "the
/// task shows no picture").
fn shape_task(id: String, prompt: String, shape: &str, mut meta: serde_json::Value, picture: &RgbImage) -> Task {
    let images = match png_url(picture) {
        Ok(url) => vec![url],
        Err(e) => {
            meta["picture_error"] = e.into();
            Vec::new()
        }
    };
    Task {
        id,
        prompt,
        answer: shape.to_string(),
        checker: Checker::Regex { pattern: format!("(?i){shape}") },
        meta,
        images,
    }
}

/// The cell ids of a task's scene.
fn scene_ids(task: &Task) -> Vec<u64> {
    task.meta["cells"].as_array().map(|a| a.iter().filter_map(|v| v.as_u64()).collect()).unwrap_or_default()
}

/// The question about the cell in `row`, `col` (1-based), with the sizes an agent needs to aim.
pub fn question(row: u32, col: u32) -> String {
    let (side, view) = (GRID * CELL, GRID * CELL / SHRINK);
    format!(
        "The picture is a {GRID}×{GRID} grid of cells, each holding one shape. Which shape is in row {row}, \
         column {col} (rows counted from the top, columns from the left): circle, rectangle or triangle? The \
         picture is shown at {view}×{view} pixels; the scene is {side}×{side}, each cell {CELL}×{CELL}, and the \
         crop and zoom tools show any box [x0, y0, x1, y1] of it at full size."
    )
}

impl Env for ShapeGrid {
    fn name(&self) -> &str {
        &self.name
    }

    fn system_prompt(&self) -> String {
        format!(
            "You answer questions about a picture. It is shown small: call the crop or zoom tool to see a part of \
             it at full size. {ANSWER_FORMAT}"
        )
    }

    /// None from the registry: the image tools come with each episode's session (they act on
    /// its scene).
    fn tool_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn tasks(&self, seed: u64, n: usize) -> Vec<Task> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let per_scene = (GRID * GRID) as usize;
        (0..n)
            .map(|i| {
                let picked: Vec<&Cell> =
                    sample(&mut rng, self.cells.len(), per_scene).into_iter().map(|k| &self.cells[k]).collect();
                let target = rng.random_range(0..per_scene);
                let (row, col) = (target as u32 / GRID + 1, target as u32 % GRID + 1);
                let ids: Vec<u64> = picked.iter().map(|c| c.id).collect();
                let meta = serde_json::json!({"split": self.split, "cells": ids, "row": row, "col": col});
                let view = ops::shrink(&scene_of(&picked), SHRINK);
                shape_task(format!("{}-{seed}-{i}", self.name), question(row, col), picked[target].shape, meta, &view)
            })
            .collect()
    }

    /// An agent that zooms into the asked cell and reads its shape from the pixels.
    fn reference_agent(&self) -> Option<Box<dyn kaizen_core::Policy>> {
        Some(Box::new(agents::Zoomer))
    }

    /// The zoomer's turns: crop the asked cell, then name its shape (the task's answer).
    fn demonstration(&self, task: &Task) -> Option<Vec<String>> {
        let at = |k: &str| task.meta[k].as_u64().and_then(|v| u32::try_from(v).ok()).filter(|v| (1..=GRID).contains(v));
        Some(vec![agents::crop_turn(at("row")?, at("col")?), agents::answer_text(&task.answer)])
    }

    fn open_session(&self, task: &Task) -> Option<Result<Box<dyn EnvSession>, String>> {
        Some(self.scene(&scene_ids(task)).map(|scene| {
            Box::new(SceneSession { tools: ImageTools::new(scene), prompt: task.prompt.clone() }) as Box<dyn EnvSession>
        }))
    }
}

/// One episode's scene and the image tools on it. The task's checker scores the answer; the
/// session never ends the episode itself.
struct SceneSession {
    tools: ImageTools,
    prompt: String,
}

impl EnvSession for SceneSession {
    fn prompt(&self) -> String {
        self.prompt.clone()
    }
    fn tools(&self) -> Vec<ToolSpec> {
        self.tools.specs()
    }
    fn act(&mut self, call: &ToolCall) -> Observation {
        self.tools.act(call)
    }
    fn status(&self) -> SessionStatus {
        SessionStatus::Running
    }
    fn unfinished_reward(&self) -> f32 {
        0.0
    }
}

#[cfg(test)]
#[path = "shape_grid_tests.rs"]
mod tests;
