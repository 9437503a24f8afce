//! The `Env` trait: a source of tasks, each with its checker, plus the instructions and tools an
//! agent gets for them. Seeded: the same seed gives the same tasks.

use crate::Task;

pub trait Env: Send + Sync {
    fn name(&self) -> &str;
    /// The system turn: what the agent may use and how to give its final answer.
    fn system_prompt(&self) -> String;
    /// Names of the tools episodes of this env may call.
    fn tool_names(&self) -> Vec<String>;
    /// `n` tasks, determined by `seed`.
    fn tasks(&self, seed: u64, n: usize) -> Vec<Task>;
    /// A worked solution of `task` as the assistant's turns (tool calls included), for
    /// supervised fine-tuning; `None` when the env has none.
    fn demonstration(&self, _task: &Task) -> Option<Vec<String>> {
        None
    }
}
