//! One module per verb; shared options in `policy`, the held-out evaluations' in `held_out_eval`.

pub mod bench;
pub mod bench_report;
pub mod bench_rerank;
pub mod chat;
pub mod collect;
pub mod compare;
pub mod embed;
pub mod eval_prm;
pub mod eval_rerank;
pub mod evolve;
pub mod export;
pub mod generate;
pub mod held_out_eval;
pub mod models;
pub mod policy;
pub mod q;
pub mod report;
pub mod run;
pub mod serve;
pub mod show;
pub mod tool;
pub mod train;
