//! Environments: where tasks come from and how answers are checked.
//! `arith` generates word problems where exact arithmetic with a tool clearly helps; `jsonl`
//! reads a user's task file (text, or with pictures); `miniwob` runs MiniWoB++ web tasks in headless Chromium;
//! `shape_grid` asks about one cell of a picture shown too small to read without zooming
//! (`shape-cell`: one cell at full size, to learn the shapes on). `open` turns a name from the command line into an env.

pub mod arith;
pub mod jsonl;
pub mod miniwob;
pub mod shape_grid;

pub use arith::Arith;
pub use jsonl::JsonlEnv;
pub use miniwob::MiniWob;
pub use shape_grid::cell::ShapeCell;
pub use shape_grid::ShapeGrid;

use kaizen_core::Env;

/// The answer-format instruction every env shares.
pub const ANSWER_FORMAT: &str = "Give the final answer as \\boxed{ANSWER} (just the number or phrase).";

/// `arith`, `arith:LEVEL` (1–5), `jsonl:PATH`, `miniwob…`, `shape-grid[:test]` or `shape-cell[:test]`.
pub fn open(spec: &str) -> Result<Box<dyn Env>, String> {
    match spec.split_once(':') {
        None if spec == "arith" => Ok(Box::new(Arith::mixed())),
        Some(("arith", level)) => {
            let l: u8 = level.parse().map_err(|_| format!("arith level must be 1..=5, got '{level}'"))?;
            Arith::level(l).map(|a| Box::new(a) as Box<dyn Env>)
        }
        Some(("jsonl", path)) => JsonlEnv::load(std::path::Path::new(path)).map(|e| Box::new(e) as Box<dyn Env>),
        _ if spec.starts_with("shape-grid") => ShapeGrid::open(spec).map(|e| Box::new(e) as Box<dyn Env>),
        _ if spec.starts_with("shape-cell") => ShapeCell::open(spec).map(|e| Box::new(e) as Box<dyn Env>),
        _ if spec.starts_with("miniwob") => MiniWob::open(spec).map(|e| Box::new(e) as Box<dyn Env>),
        _ => Err(format!(
            "unknown env '{spec}' (known: arith, arith:LEVEL, jsonl:PATH, miniwob-easy, miniwob-medium, miniwob-all, \
             miniwob:TASK,…, miniwob-list:FILE, shape-grid, shape-grid:test, shape-cell, \
             shape-cell:test)"
        )),
    }
}
