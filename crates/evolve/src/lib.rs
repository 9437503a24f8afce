//! Self-evolution from zero data (`../shared/METHODS.md` §4, Agent0): a curriculum agent learns
//! to write tasks at the edge of the executor's ability, and the executor learns from the
//! majority-vote pseudo-labels of those tasks with ADPO — no human-labelled data. And
//! Agent0-VL's cycle (§5): one policy solves, verifies its own steps, repairs the unsure ones
//! and trains on the process rewards, iteration after iteration.
//!
//! - `bleu`: sentence-BLEU, the BLEU distance and average-linkage clusters (the repetition
//!   penalty);
//! - `curriculum`: the curriculum env, the task format and the curriculum reward (the paper's
//!   form and the authors' code's);
//! - `pool`: votes, `p̂`, screening and the band filter, pool files `kaizen train` reads;
//! - `recipe`: evolve recipes and the stage recipes derived from them;
//! - `evolution`: the loop, its run directory, resume, and the per-iteration record;
//! - `vl_recipe`, `vl`: Agent0-VL's cycle recipes, and the cycle with its held-out scores
//!   (solver alone, verifier + repair, the verifier as a PRM).
//!
//! The executor trains through `kaizen-rl`'s trainer (ADPO reads each pool task's `p̂`); the
//! curriculum trains through it too, its reward injected (`kaizen_rl::Reward`).

pub mod bleu;
pub mod curriculum;
pub mod error;
pub mod evolution;
pub mod pool;
pub mod recipe;
pub mod vl;
pub mod vl_recipe;

pub use error::{EvolveError, Result};
pub use evolution::{evolve, resume, Event, IterationRecord};
pub use recipe::EvolveRecipe;
pub use vl::{evolve_vl, is_vl_run, resume_vl, VlRecord};
pub use vl_recipe::VlRecipe;
