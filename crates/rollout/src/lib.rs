//! Episodes: a policy, an environment's task, and tools, run turn by turn into a
//! `kaizen_core::Trajectory` (token-exact with local models) — one at a time, as a continuous
//! batch on a local model (`engine`), or Best-of-N with a selector (`rerank`), all through one
//! `runner::Runner` that owns concurrency; their settings (`episode_args`: one set of defaults);
//! the Best-of-Q evaluation protocol (`selection_eval`); Agent0-VL's verifier role, whose
//! verifications are episodes too (`verifier`), and the verifier as a process reward model
//! (`prm_eval`); and the run directory that records
//! them; trajectories as Parquet (`columnar`) and tasks as verl's RL dataset (`verl_export`)
//! for other trainers.
//!
//! Not here: what happens to trajectories afterwards (training, Q-learning, reports).

pub mod columnar;
pub mod engine;
pub mod episode;
pub mod episode_args;
pub mod image_store;
pub mod prm_eval;
pub mod rerank;
pub mod run_dir;
pub mod runner;
pub mod selection_eval;
pub mod verifier;
pub mod verl_export;

pub use columnar::{write_parquet, PARQUET_FILE};
pub use engine::{in_job_order, run_local, EngineStats};
pub use episode::{
    check_prompts_fit, demonstration, few_shot, observation_segment, run_episode, Agent, Episode, EpisodeConfig, Job,
    Prefix, Toolbox,
};
pub use episode_args::EpisodeArgs;
pub use run_dir::{per_task, RunDir, RunSummary, TaskRow};
