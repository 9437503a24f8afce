//! Reinforcement learning for tool use (`../shared/METHODS.md` §2–4): the advantage
//! estimators — GRPO, Dr.GRPO, ADPO, AXPO, RLOO and Agent0-VL's process returns (`process`), in
//! one registry by name (`estimator`) — the
//! token-level PPO-clip loss with a KL penalty,
//! and the diagnostics a training run reports. Every formula is a small pure function with its
//! equation in its doc comment and a test on hand-computed numbers.
//!
//! Also here: recipes (`recipe`), what a run is given besides its recipe — env, tools, worked
//! examples, reward (`setup`) —, the task streams with held-out sets disjoint by content
//! (`streams`), checkpoints, AdamW with saveable state, and the training loop as stages (`trainer`: SFT, rollouts,
//! PPO update, evaluation, metrics and checkpoints).
//!
//! Not here: rollouts (`kaizen-rollout`), the trainable models (`kaizen-models`).

pub mod advantages;
pub mod axpo;
pub mod axpo_resample;
pub mod batch;
pub mod checkpoint;
pub mod diagnostics;
pub mod error;
pub mod estimator;
pub mod loss;
pub mod optim;
pub mod process;
pub mod recipe;
pub mod setup;
pub mod streams;
pub mod trainer;
pub mod verifier_reward;

pub use advantages::{adpo_eps_high, adpo_scale, answer_counts, dr_grpo, grpo, self_consistency};
pub use batch::{sft_loss, TokenBatch};
pub use error::{Result, RlError};
pub use estimator::{Advantage, Estimator};
pub use loss::{ppo_loss, LossStats, Normalisation, PpoConfig};
pub use recipe::Recipe;
pub use setup::{CheckerReward, Reward, Scoring, Setup};
pub use trainer::{final_weights, resume, run_recipe, train, StepMetrics};
pub use verifier_reward::VerifierReward;
