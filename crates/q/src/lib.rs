//! Best-of-Q (`../shared/METHODS.md` §1): a frozen policy proposes candidate actions, a small
//! Q-function trained offline on logged episodes picks one.
//!
//! - `objectives`: the offline targets and losses — Monte-Carlo returns, TD(0) targets with a
//!   max over the logged candidate set, IQL's expectile loss — pure functions;
//! - `metrics`: success-prediction AUC and top-1 ranking accuracy;
//! - `features`: frozen sentence embeddings of states and actions, cached on disk by content
//!   hash;
//! - `picture`: what it reads of a state's pictures — a thumbnail of the latest one;
//! - `qnet`: the Q-head, an MLP over `[e_s, e_a, e_s ⊙ e_a, p_s, log-prob]`;
//! - `state`: what it reads — the text of a state and of an action, one representation for
//!   the runner, `kaizen q train` and the proxy — and the `ActionScorer` a selector calls;
//! - `dataset`: logged runs and proxy decisions → transitions; `scorer`: the Q-function as an
//!   `ActionScorer`.
//!
//! - `error`: the one error type of this crate (`QError`).
//!
//! Not here: proposing candidates (the episode runner) or serving (the proxy).

pub mod dataset;
pub mod error;
pub mod features;
pub mod metrics;
pub mod objectives;
pub mod picture;
pub mod qnet;
pub mod scorer;
pub mod state;
