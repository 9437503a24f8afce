//! The `Env` trait: a source of tasks, each with its checker, plus the instructions and tools an
//! agent gets for them. Seeded: the same seed gives the same tasks.
//!
//! Most envs are stateless (a prompt and a checker). A stateful env — a web page — opens an
//! `EnvSession` per episode: the session writes the prompt, owns the action tools, and says
//! when the episode ended and with what reward.

use crate::{Observation, Task, ToolCall, ToolSpec};

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
    /// A scripted agent that solves (some of) this env's tasks, for worked examples where a
    /// demonstration needs a live session to write (a web page); `None` when the env has none.
    fn reference_agent(&self) -> Option<Box<dyn crate::Policy>> {
        None
    }
    /// A live session for one episode of `task`, for envs with state; `None` for stateless
    /// envs. `Err` when the env could not start one (the episode is recorded as failed).
    fn open_session(&self, _task: &Task) -> Option<Result<Box<dyn EnvSession>, String>> {
        None
    }
    /// Whether each episode opens a session that writes its own prompt (`open_session`), so the
    /// task's text alone is not what the policy reads.
    fn has_sessions(&self) -> bool {
        false
    }
    /// How many episodes may run at once (a browser pool's size); `None` = no limit.
    fn max_concurrent_episodes(&self) -> Option<usize> {
        None
    }
}

/// Where a session stands after its last action.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionStatus {
    Running,
    /// The env ended the episode with this reward.
    Ended {
        reward: f32,
    },
    /// The env broke (a crashed browser); the episode is recorded as failed.
    Failed {
        message: String,
    },
}

/// One episode's live environment. Runs on whichever thread runs the episode's tools.
pub trait EnvSession: Send {
    /// The user turn that opens the episode (the instruction and what the agent sees).
    fn prompt(&self) -> String;
    /// The actions this env offers, as tool schemas.
    fn tools(&self) -> Vec<ToolSpec>;
    /// Runs one action; the observation is what the agent sees after it. Never panics.
    fn act(&mut self, call: &ToolCall) -> Observation;
    fn status(&self) -> SessionStatus;
    /// The reward when the agent stops before the env ended the episode.
    fn unfinished_reward(&self) -> f32;
    /// What the agent sees now as an image (`data:image/png;base64,…`), for vision policies;
    /// `None` when the env has no picture of its state.
    fn screenshot(&mut self) -> Option<Result<String, String>> {
        None
    }
}

/// `n` tasks of `env`'s stream `seed` held out *by content* from what training saw: every task
/// whose normalised text (`Task::content_key`) `seen` holds is skipped, and every repeat within
/// the set. Distinct seeds do not make distinct tasks (arith draws from a finite space; about
/// 17% of a seed-separated held-out set repeated a training task). An error naming `what` (the
/// setting that asks for `n`) when fewer than `n` distinct unseen tasks turn up in 20·n draws.
///
/// Envs with sessions (web pages seeded per episode) are the exception: their task text is the
/// task's name and their content the page its seed writes, so their sets stay seed-separated.
pub fn held_out_tasks(
    env: &dyn Env,
    seed: u64,
    n: usize,
    seen: impl Fn(&str) -> bool,
    what: &str,
) -> Result<Vec<Task>, String> {
    if env.has_sessions() {
        return Ok(env.tasks(seed, n));
    }
    let mut taken = std::collections::HashSet::new();
    let out: Vec<Task> = env
        .tasks(seed, n.saturating_mul(20))
        .into_iter()
        .filter(|t| {
            let key = t.content_key();
            !seen(&key) && taken.insert(key)
        })
        .take(n)
        .collect();
    if out.len() < n {
        return Err(format!(
            "{what}: only {} of {n} held-out tasks of {} differ from every training task; lower {what}",
            out.len(),
            env.name()
        ));
    }
    Ok(out)
}
