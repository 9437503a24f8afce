//! Tools a model can call, each a `kaizen_core::Tool`: `python` (untrusted code in a
//! bubblewrap sandbox with warm interpreters) and `calculator` (exact arithmetic in Rust), and
//! the registry that turns a parsed tool call into an observation; and the headless browser
//! that web environments act through (`browser`).
//!
//! Not here: deciding when to call tools (the episode runner) or parsing model text (core).

pub mod browser;
pub mod sandbox;

pub use sandbox::{Limits, RunResult, Sandbox, SANDBOX_UIDS};
pub mod calculator;
pub mod image;
pub mod python;
pub mod registry;

pub use calculator::Calculator;
pub use python::PythonTool;
pub use registry::ToolRegistry;
