//! Best-of-N episodes: at every step the policy proposes N actions, a selector picks the one
//! to execute, and the whole candidate set is recorded in the turn. Selectors: the first
//! sample (the policy alone), a random one, the most likely one (highest log-prob), or a
//! scorer's best (Best-of-Q) with ties broken by log-prob.
//!
//! A local model proposes by continuing the episode's own tokens — N continuations of one
//! prefill — so the executed candidate is recorded token for token with the log-probs it was
//! sampled with, like every local episode's turn (and replays to them). A remote policy or a
//! reference agent is sent the conversation. The same selectors serve both. Episodes run one
//! at a time per call (not yet through the batched engine: each turn prefills its history
//! again, the shared opening from the prefix cache).

use crate::episode::{Agent, Episode, EpisodeConfig, Job};
use kaizen_core::trajectory::{Candidate, Trajectory};
use kaizen_core::{Completion, Env, SamplingParams};
use kaizen_q::picture::latest_picture;
use kaizen_q::state::{best_index, describe_action, full_state, state_of, state_text, ActionScorer};
use kaizen_tools::ToolRegistry;
use std::time::Instant;

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

/// Runs one episode proposing `n` candidates per step and executing the selector's choice.
pub fn run_best_of_n(
    agent: &Agent,
    env: &dyn Env,
    registry: &ToolRegistry,
    job: Job,
    cfg: &EpisodeConfig,
    n: usize,
    selector: &Selector,
) -> Trajectory {
    let mut ep = Episode::new(agent, env, registry, job, cfg);
    while let Some(params) = ep.next_turn() {
        let t = Instant::now();
        let proposed = match propose(agent, &ep, &params, n.max(1)) {
            Ok(p) => p,
            Err(e) => {
                ep.fail(e);
                break;
            }
        };
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
                match scorer.score(&state, latest_picture(ep.messages()), &actions) {
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

/// `n` candidates for the episode's next turn (at least one, or an error). A local model
/// continues the episode's token history (`n` continuations of one prefill, the opening from
/// the prefix cache); a remote policy is sent the conversation, and asked again with other
/// seeds while it returns fewer than `n` (a server without `n`).
fn propose(agent: &Agent, ep: &Episode, params: &SamplingParams, n: usize) -> Result<Vec<Completion>, String> {
    let no_completion = || "the policy returned no completion".to_string();
    match agent {
        Agent::Local(llm) => {
            let params = SamplingParams { n, ..params.clone() };
            let out = llm
                .generate_after(ep.token_ids(), ep.shared_prefix(), ep.pictures(), &params, &mut |_| true)
                .map_err(|e| e.to_string())?;
            if out.is_empty() {
                return Err(no_completion());
            }
            Ok(out)
        }
        Agent::Remote(policy) => {
            let mut proposed = Vec::new();
            let mut error = None;
            for attempt in 0..n as u64 {
                let want = n - proposed.len();
                let seed = params.seed.wrapping_add(attempt * 7919);
                match policy.chat(&ep.request(SamplingParams { n: want, seed, ..params.clone() })) {
                    Ok(cs) if !cs.is_empty() => proposed.extend(cs),
                    Ok(_) => error = Some(no_completion()),
                    Err(e) => error = Some(e.to_string()),
                }
                if proposed.len() >= n || error.is_some() {
                    break;
                }
            }
            if proposed.is_empty() {
                return Err(error.unwrap_or_else(no_completion));
            }
            Ok(proposed)
        }
    }
}
