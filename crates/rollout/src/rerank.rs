//! Best-of-N episodes: at every step the policy proposes N actions, a selector picks the one
//! to execute, and the whole candidate set is recorded in the turn. Selectors: the first
//! sample (the policy alone), a random one, the most likely one (highest log-prob), or a
//! scorer's best (Best-of-Q) with ties broken by log-prob.
//!
//! Runs turn by turn over messages, with any `Policy` (a remote server, a local model through
//! its chat interface, a reference agent), so the same selector serves every backend.

use crate::episode::{Agent, Episode, EpisodeConfig, Job};
use crate::trajectory::{Candidate, Trajectory};
use kaizen_core::{Completion, Env, Message, Policy, Role};
use kaizen_tools::ToolRegistry;
use std::time::Instant;

/// Scores candidate actions in a state (a Q-function): one score per action, higher better.
pub trait ActionScorer: Send + Sync {
    /// `state` is the state's text (task and recent history); each action is its text (as the
    /// env describes it) and the policy's log-prob.
    fn score(&self, state: &str, actions: &[(String, f32)]) -> Result<Vec<f32>, String>;
}

pub enum Selector<'a> {
    /// The first sample: the policy alone.
    First,
    /// A uniformly random candidate (seeded by the step).
    Random,
    /// The candidate with the highest total log-prob.
    MaxLogprob,
    /// The scorer's best; ties broken by log-prob.
    Scored(&'a dyn ActionScorer),
}

/// The state as the scorer reads it, from `(role, content)` turns: the last user turn is the
/// task, every turn after it a `role: content` line of history. What comes before the task —
/// the system turn, worked examples (few-shot), earlier requests of a chat — is left out, so a
/// state reads the same with or without examples in the prompt.
pub fn state_parts<'m>(turns: impl IntoIterator<Item = (&'m str, &'m str)>) -> (String, Vec<String>) {
    let turns: Vec<(&str, &str)> = turns.into_iter().collect();
    let Some(at) = turns.iter().rposition(|(role, _)| *role == Role::User.as_str()) else {
        return (String::new(), Vec::new());
    };
    let history = turns[at + 1..].iter().map(|(role, content)| format!("{role}: {content}")).collect();
    (turns[at].1.to_string(), history)
}

pub fn state_of(messages: &[Message]) -> (String, Vec<String>) {
    state_parts(messages.iter().map(|m| (m.role.as_str(), m.content.as_str())))
}

/// The whole state, uncut: what an env reads to describe an action (the latest page of a web
/// task may lie beyond `state_text`'s cut).
pub fn full_state(task: &str, history: &[String]) -> String {
    format!("{task}\n{}", history.join("\n"))
}

/// An action as the Q-function reads it, one representation for the runner, `kaizen q
/// train` and the Best-of-Q proxy alike: a tool call that names an element (`"ref": N`) whose
/// line `[N] …` is in the state becomes `name{args} on [N] …` (what it acts on, from the latest
/// page in `state`, the *uncut* state of `full_state`); anything else is its own text.
pub fn describe_action(state: &str, action: &str) -> String {
    let call = kaizen_core::parse_tool_calls(action).into_iter().find_map(Result::ok);
    let Some(call) = call else { return action.to_string() };
    let line = call.arguments["ref"].as_i64().and_then(|r| {
        let tag = format!("[{r}] ");
        state.lines().rev().map(str::trim_start).find(|l| l.starts_with(&tag)).map(str::to_string)
    });
    match line {
        Some(l) => format!("{}{} on {l}", call.name, call.arguments),
        None => action.to_string(),
    }
}

/// Distinct completions (by text), the first of each kept.
pub fn dedup(completions: Vec<Completion>) -> Vec<Completion> {
    let mut out: Vec<Completion> = Vec::new();
    for c in completions {
        if !out.iter().any(|o| o.text.trim() == c.text.trim()) {
            out.push(c);
        }
    }
    out
}

/// `index = argmax score`, ties to the higher log-prob, then to the earlier candidate.
pub fn best_index(scores: &[f32], logprobs: &[f32]) -> usize {
    (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(logprobs[a].total_cmp(&logprobs[b])).then(b.cmp(&a)))
        .unwrap_or(0)
}

/// Runs one episode proposing `n` candidates per step and executing the selector's choice.
pub fn run_best_of_n(
    policy: &dyn Policy,
    env: &dyn Env,
    registry: &ToolRegistry,
    job: Job,
    cfg: &EpisodeConfig,
    n: usize,
    selector: &Selector,
) -> Trajectory {
    let agent = Agent::Remote(policy);
    let mut ep = Episode::new(&agent, env, registry, job, cfg);
    while let Some(params) = ep.next_turn() {
        let t = Instant::now();
        // Ask for n; a backend that returns fewer (no `n`) is asked again with other seeds.
        let mut proposed = Vec::new();
        let mut error = None;
        for attempt in 0..n.max(1) as u64 {
            let want = n.max(1) - proposed.len();
            let seed = params.seed.wrapping_add(attempt * 7919);
            match policy.chat(&ep.request(kaizen_core::SamplingParams { n: want, seed, ..params.clone() })) {
                Ok(cs) if !cs.is_empty() => proposed.extend(cs),
                Ok(_) => error = Some("the policy returned no completion".to_string()),
                Err(e) => error = Some(e.to_string()),
            }
            if proposed.len() >= n.max(1) || error.is_some() {
                break;
            }
        }
        if proposed.is_empty() {
            ep.fail(error.unwrap_or_else(|| "the policy returned no completion".into()));
            break;
        }
        let candidates = dedup(proposed);
        let logprobs: Vec<f32> = candidates.iter().map(Completion::total_logprob).collect();
        let (chosen, scores) = match selector {
            Selector::First => (0, None),
            Selector::Random => {
                // The turn's seed (episode seed + turn index) drives the pick: reproducible.
                let h = params.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((h >> 33) as usize % candidates.len(), None)
            }
            Selector::MaxLogprob => (best_index(&logprobs, &logprobs), None),
            Selector::Scored(scorer) => {
                let (task, history) = state_of(ep.messages());
                let full = full_state(&task, &history);
                let state = state_text(&task, &history);
                let actions: Vec<(String, f32)> =
                    candidates.iter().zip(&logprobs).map(|(c, &lp)| (describe_action(&full, &c.text), lp)).collect();
                match scorer.score(&state, &actions) {
                    Ok(s) if s.len() == candidates.len() => (best_index(&s, &logprobs), Some(s)),
                    // A scorer that fails must not stop the agent: fall back to the policy.
                    _ => (best_index(&logprobs, &logprobs), None),
                }
            }
        };
        let record: Vec<Candidate> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| Candidate {
                text: c.text.clone(),
                logprob: logprobs[i],
                score: scores.as_ref().map(|s| s[i]),
                chosen: i == chosen,
            })
            .collect();
        let Some(c) = candidates.into_iter().nth(chosen) else { break };
        let calls = ep.on_completion(c, t.elapsed().as_secs_f64() * 1e3);
        // Every step's candidates are recorded, a single one too: Q training then reads the
        // taken action's real log-prob, the value scoring passes.
        ep.record_candidates(record);
        if !calls.is_empty() {
            let (obs, ms) = ep.toolbox(registry).run(&calls);
            ep.on_observations(obs, ms);
        }
    }
    ep.finish()
}

/// Characters of the task kept at the front of a state, and of the latest history at its end
/// (a sentence encoder reads ~256 word pieces; the middle of a long history matters least).
const TASK_CHARS: usize = 600;
const RECENT_CHARS: usize = 900;

/// The text of a state: the task, then as much of the most recent history as fits.
pub fn state_text(task: &str, history: &[String]) -> String {
    let task: String = task.chars().take(TASK_CHARS).collect();
    let recent = history.join("\n");
    let n = recent.chars().count();
    let tail: String = recent.chars().skip(n.saturating_sub(RECENT_CHARS)).collect();
    if tail.is_empty() {
        task
    } else {
        format!("{task}\n{tail}")
    }
}

#[cfg(test)]
#[path = "rerank_tests.rs"]
mod tests;
