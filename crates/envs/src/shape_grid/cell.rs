//! `shape-cell`: one easy-VQA picture at full size (64×64, as a `crop` of one shape-grid cell
//! shows it) and the question which shape it holds; no tools. Recipes mix its demonstrations
//! into SFT (`[[sft.mix]]`) so that a vision policy learns to read shapes beside learning to
//! aim — in the spirit of LLaVA's alignment on described pictures, interleaved rather than
//! first. In `shape-grid`'s demonstrations the shape is one written token in ~150: the same
//! recipe without the mix learns the crop call but answers one shape for every picture (34.3%
//! of held-out scenes against 74.7% with it; BENCHMARKS.md). Same pictures and
//! splits as `shape-grid`: `shape-cell` reads the train pictures, `shape-cell:test` the test ones;
//! tasks draw pictures with replacement, so a stream may repeat one.

use super::{agents, ShapeGrid};
use crate::ANSWER_FORMAT;
use kaizen_core::{Env, Task};
use rand::{Rng, SeedableRng};

/// The question every task asks.
pub const CELL_QUESTION: &str = "Which shape is in the picture: circle, rectangle or triangle?";

pub struct ShapeCell {
    grid: ShapeGrid,
}

impl ShapeCell {
    /// `shape-cell`, `shape-cell:train` or `shape-cell:test`.
    pub fn open(spec: &str) -> Result<ShapeCell, String> {
        let split = match spec {
            "shape-cell" | "shape-cell:train" => "train",
            "shape-cell:test" => "test",
            _ => {
                return Err(format!(
                    "unknown shape-cell split in '{spec}' (shape-cell, shape-cell:train, shape-cell:test)"
                ))
            }
        };
        let dir = super::data_root().join(split);
        Ok(ShapeCell { grid: ShapeGrid::open_dir(spec, split, &dir)? })
    }

    /// The content hash of each picture of the split (for the held-out check).
    pub fn picture_hashes(&self) -> Vec<String> {
        self.grid.picture_hashes()
    }
}

impl Env for ShapeCell {
    fn name(&self) -> &str {
        &self.grid.name
    }

    fn system_prompt(&self) -> String {
        format!("You answer questions about a picture. {ANSWER_FORMAT}")
    }

    fn tool_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// `n` pictures drawn with replacement (a seed's stream may repeat one).
    fn tasks(&self, seed: u64, n: usize) -> Vec<Task> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let cells = &self.grid.cells;
        (0..n)
            .map(|i| {
                let cell = &cells[rng.random_range(0..cells.len())];
                let meta = serde_json::json!({"split": self.grid.split, "cell": cell.id});
                let id = format!("{}-{seed}-{i}", self.grid.name);
                super::shape_task(id, CELL_QUESTION.to_string(), cell.shape, meta, &cell.pixels)
            })
            .collect()
    }

    /// Names the shape by the pixel rule the shape-grid agents use.
    fn reference_agent(&self) -> Option<Box<dyn kaizen_core::Policy>> {
        Some(Box::new(agents::Reader))
    }

    /// The answer, as the shape-grid agents write it.
    fn demonstration(&self, task: &Task) -> Option<Vec<String>> {
        Some(vec![agents::answer_text(&task.answer)])
    }
}

#[cfg(test)]
#[path = "cell_tests.rs"]
mod tests;
