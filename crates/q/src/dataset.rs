//! Logged episodes → Q-learning transitions: for every step, the state's text (as the
//! reranker builds it), the action taken, its log-prob, and the next state's logged candidate
//! set; the sparse reward (success 1, failure 0) at the last step.

use crate::features::FeatureCache;
use crate::qnet::Transition;
use kaizen_core::Env;
use kaizen_rollout::rerank::state_text;
use kaizen_rollout::{shown_text, Trajectory};
use std::collections::HashMap;

/// One step of a logged episode, as text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextStep {
    pub task: String,
    /// The state's text and the full history it was cut from (for describing actions).
    pub state: String,
    pub full_state: String,
    pub action: String,
    pub logprob: f32,
    /// The next step's logged candidates (text, log-prob); empty after the last step.
    pub next_candidates: Vec<(String, f32)>,
    pub step: usize,
    pub steps: usize,
    pub success: bool,
}

/// The steps of one episode, in order. The history of step t is what the policy had seen:
/// its earlier turns (as the chat showed them) and their observations.
pub fn text_steps(t: &Trajectory) -> Vec<TextStep> {
    let success = t.reward > 0.5;
    let mut history: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, turn) in t.turns.iter().enumerate() {
        let full_state = format!("{}\n{}", t.task.prompt, history.join("\n"));
        let logprob = turn.candidates.iter().find(|c| c.chosen).map_or(0.0, |c| c.logprob);
        let next_candidates = match t.turns.get(i + 1) {
            Some(next) if !next.candidates.is_empty() => {
                next.candidates.iter().map(|c| (c.text.clone(), c.logprob)).collect()
            }
            Some(next) => vec![(next.text.clone(), 0.0)],
            None => vec![],
        };
        out.push(TextStep {
            task: t.task.id.clone(),
            state: state_text(&t.task.prompt, &history),
            full_state,
            action: turn.text.clone(),
            logprob,
            next_candidates,
            step: i,
            steps: t.turns.len(),
            success,
        });
        let calls = !turn.tool_calls.is_empty() || !turn.malformed.is_empty();
        history.push(format!("assistant: {}", shown_text(&turn.text, calls)));
        history.extend(turn.observations.iter().map(|o| format!("tool: {}", o.content)));
    }
    out
}

/// Embeds every step (states, described actions, next candidates) through the cache and
/// builds the transitions. Returns them and the share of texts served from the cache.
pub fn transitions(
    trajectories: &[Trajectory],
    env: &dyn Env,
    cache: &FeatureCache,
    gamma: f32,
) -> anyhow::Result<(Vec<Transition>, f64)> {
    let steps: Vec<TextStep> = trajectories.iter().flat_map(text_steps).collect();
    // The next state of step i is step i+1 of the same episode.
    let mut texts: Vec<String> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        texts.push(s.state.clone());
        texts.push(env.describe_action(&s.full_state, &s.action));
        if s.step + 1 < s.steps {
            let next = &steps[i + 1];
            texts.extend(next_candidates_described(next, s, env));
        }
    }
    texts.sort();
    texts.dedup();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (vecs, hits) = cache.embed(&refs)?;
    let table: HashMap<&str, &Vec<f32>> = refs.iter().copied().zip(vecs.iter()).collect();
    let get = |t: &str| table.get(t).map(|v| (*v).clone()).unwrap_or_default();
    let mut out = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        let done = s.step + 1 == s.steps;
        let reward = if done && s.success { 1.0 } else { 0.0 };
        let next = (!done).then(|| {
            let n = &steps[i + 1];
            let cands = next_candidates_described(n, s, env)
                .iter()
                .zip(&s.next_candidates)
                .map(|(t, c)| (get(t), c.1))
                .collect();
            (get(&n.state), cands)
        });
        out.push(Transition {
            task: s.task.clone(),
            state_key: format!("{}#{}", s.task, s.state),
            state: get(&s.state),
            action: get(&env.describe_action(&s.full_state, &s.action)),
            logprob: s.logprob,
            reward,
            done,
            mc_return: if s.success { gamma.powi((s.steps - 1 - s.step) as i32) } else { 0.0 },
            success: s.success,
            next,
        });
    }
    Ok((out, if refs.is_empty() { 0.0 } else { hits as f64 / refs.len() as f64 }))
}

/// The next state's candidates (logged on `s`), described in the next state.
fn next_candidates_described(next: &TextStep, s: &TextStep, env: &dyn Env) -> Vec<String> {
    s.next_candidates.iter().map(|(text, _)| env.describe_action(&next.full_state, text)).collect()
}
