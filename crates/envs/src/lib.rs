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

/// An env's opener: the whole spec in, the env or an error naming what is wrong.
type Opener = fn(&str) -> Result<Box<dyn Env>, String>;

/// Every env, by the name its specs start with: its specs as `--help` and errors list them, and
/// its opener. Adding an env is its file and one line here.
const ENVS: &[(&str, &str, Opener)] = &[
    ("arith", "arith, arith:LEVEL", |spec| match spec.split_once(':') {
        None if spec == "arith" => Ok(Box::new(Arith::mixed())),
        None => Err(format!("unknown env '{spec}' (arith, or arith:LEVEL with LEVEL 1..=5)")),
        Some((_, level)) => {
            let l: u8 = level.parse().map_err(|_| format!("arith level must be 1..=5, got '{level}'"))?;
            Arith::level(l).map(|a| Box::new(a) as Box<dyn Env>)
        }
    }),
    ("jsonl", "jsonl:PATH", |spec| {
        let path = spec.strip_prefix("jsonl:").ok_or("jsonl needs a path: jsonl:PATH")?;
        JsonlEnv::load(std::path::Path::new(path)).map(|e| Box::new(e) as Box<dyn Env>)
    }),
    ("miniwob", "miniwob-easy, miniwob-medium, miniwob-all, miniwob:TASK,…, miniwob-list:FILE", |spec| {
        MiniWob::open(spec).map(|e| Box::new(e) as Box<dyn Env>)
    }),
    ("shape-grid", "shape-grid, shape-grid:test", |spec| ShapeGrid::open(spec).map(|e| Box::new(e) as Box<dyn Env>)),
    ("shape-cell", "shape-cell, shape-cell:test", |spec| ShapeCell::open(spec).map(|e| Box::new(e) as Box<dyn Env>)),
];

/// `arith`, `arith:LEVEL` (1–5), `jsonl:PATH`, `miniwob…`, `shape-grid[:test]` or `shape-cell[:test]`:
/// the env whose name the spec is, or starts with before a `:` or `-`.
pub fn open(spec: &str) -> Result<Box<dyn Env>, String> {
    let named = |name: &str| {
        spec.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with(':') || rest.starts_with('-'))
    };
    match ENVS.iter().find(|(name, _, _)| named(name)) {
        Some((_, _, open)) => open(spec),
        None => {
            let known: Vec<&str> = ENVS.iter().map(|(_, specs, _)| *specs).collect();
            Err(format!("unknown env '{spec}' (known: {})", known.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(spec: &str) -> String {
        open(spec).err().unwrap_or_else(|| panic!("{spec} opened"))
    }

    #[test]
    fn specs_open_by_name_and_unknown_ones_list_every_env() {
        assert_eq!(open("arith").map(|e| e.name().to_string()).ok(), Some(Arith::mixed().name().to_string()));
        assert!(open("arith:2").is_ok());
        assert!(error("arith:9").contains("1..=5"));
        assert!(error("arith-x").contains("unknown env 'arith-x'"));
        assert!(error("jsonl").contains("jsonl:PATH"));
        let e = error("chess");
        for specs in ENVS.iter().map(|(_, specs, _)| specs) {
            assert!(e.contains(specs), "{e}");
        }
        assert!(e.starts_with("unknown env 'chess' (known: arith, arith:LEVEL, jsonl:PATH, miniwob-easy"), "{e}");
    }
}
