//! kaizen's data model, shared by every other part: chat messages and tool calls, sampling
//! options, sampled completions with per-token log-probs, the record of an episode
//! (`trajectory`: `Trajectory` with its one success and one tool-use predicate), the `Policy`
//! trait that local models and remote OpenAI-compatible servers both implement, the `Env` trait
//! with held-out task draws (`env::held_out_tasks`), and JSON-lines reading (`jsonl`).
//!
//! Nothing heavy lives here (no tensors, no HTTP): this crate compiles in seconds.

pub mod chat;
pub mod durable;
pub mod env;
pub mod home;
pub mod image;
pub mod jsonl;
pub mod openai;
pub mod policy;
pub mod sampling;
pub mod task;
pub mod tool;
pub mod tool_call;
pub mod trajectory;

pub use chat::{Message, Role, ToolCall, ToolSpec};
pub use env::{Env, EnvSession, SessionStatus};
pub use policy::{ChatRequest, Policy, PolicyError};
pub use sampling::{Completion, FinishReason, SamplingParams, TokenLogprob, TopLogprob};
pub use task::{parse_number, Checker, Task};
pub use tool::{Observation, Tool};
pub use tool_call::{final_answer, parse_tool_calls, MalformedCall};
pub use trajectory::{Candidate, EpisodeEnd, Timing, Trajectory, Turn, Verdict, SCHEMA_VERSION};
