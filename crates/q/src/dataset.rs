//! Logged episodes → Q-learning transitions: for every step, the state's text (as the
//! reranker builds it), the action taken, its log-prob, and the next state's logged candidate
//! set; the sparse reward (success 1, failure 0) at the last step.

use crate::features::FeatureCache;
use crate::picture::{latest_picture, thumbnail};
use crate::qnet::Transition;
use crate::state::{full_state, state_of, state_text};
use kaizen_core::Message;
use kaizen_core::Trajectory;
use std::collections::HashMap;

/// One step of a logged episode, as text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextStep {
    pub task: String,
    /// The episode the step belongs to: a step's next state is the next step of the same
    /// episode, never another's.
    pub episode: String,
    /// The state's text and the full history it was cut from (for describing actions).
    pub state: String,
    pub full_state: String,
    /// The state's latest picture (`picture::latest_picture`), if it shows one.
    pub picture: Option<String>,
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
    let success = t.solved();
    // The chat as the runner held it, so states read exactly as they did when reranking.
    let mut chat = vec![Message { images: t.task.images.clone(), ..Message::user(t.task.prompt.clone()) }];
    let turn_logprobs = turn_logprobs(t);
    let mut out = Vec::new();
    for (i, turn) in t.turns.iter().enumerate() {
        let (task, history) = state_of(&chat);
        let full_state = full_state(&task, &history);
        let picture = latest_picture(&chat).map(String::from);
        let logprob = turn.candidates.iter().find(|c| c.chosen).map_or(turn_logprobs[i], |c| c.logprob);
        let next_candidates = match t.turns.get(i + 1) {
            Some(next) if !next.candidates.is_empty() => {
                next.candidates.iter().map(|c| (c.text.clone(), c.logprob)).collect()
            }
            Some(next) => vec![(next.text.clone(), turn_logprobs[i + 1])],
            None => vec![],
        };
        out.push(TextStep {
            task: t.task.id.clone(),
            episode: t.episode_id.clone(),
            state: state_text(&task, &history),
            full_state,
            picture,
            action: turn.text.clone(),
            logprob,
            next_candidates,
            step: i,
            steps: t.turns.len(),
            success,
        });
        chat.extend(turn.messages());
    }
    out
}

/// Each turn's total log-prob as the sampler recorded it: the sum over the turn's run of
/// model-written tokens (turn i is the i-th run of `loss_mask`). What a scorer is handed for a
/// taken action (`Completion::total_logprob`) where a step recorded no candidates; 0 where the
/// trajectory holds no tokens (a remote policy).
fn turn_logprobs(t: &Trajectory) -> Vec<f32> {
    let mut sums = vec![0.0f32; t.turns.len()];
    let (mut turn, mut in_run) = (0usize, false);
    for (i, &m) in t.loss_mask.iter().enumerate() {
        if m == 1 {
            if let Some(s) = sums.get_mut(turn) {
                *s += t.logprobs.get(i).copied().unwrap_or(0.0);
            }
            in_run = true;
        } else if in_run {
            turn += 1;
            in_run = false;
        }
    }
    sums
}

/// The steps of the Best-of-Q proxy's `decisions.jsonl`: decisions grouped by episode id in
/// order, labelled by the episode's last `feedback` reward (success: reward > 0.5). Episodes
/// without feedback have no outcome and are left out; malformed lines are errors naming the
/// line (a torn last line from a crash is skipped).
pub fn decision_steps(log: &str) -> Result<Vec<TextStep>, String> {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut order: Vec<String> = Vec::new();
    let mut decisions: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    let mut reward: HashMap<String, f64> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() => continue,
            Err(e) => return Err(format!("decisions line {}: {e}", i + 1)),
        };
        if let Some(f) = v.get("feedback") {
            if let (Some(id), Some(r)) = (f["episode_id"].as_str(), f["reward"].as_f64()) {
                reward.insert(id.to_string(), r);
            }
            continue;
        }
        let id = v["episode_id"].as_str().ok_or(format!("decisions line {}: no episode_id", i + 1))?.to_string();
        if !decisions.contains_key(&id) {
            order.push(id.clone());
        }
        decisions.entry(id).or_default().push(v);
    }
    let cands = |d: &serde_json::Value| -> Vec<(String, f32, bool)> {
        d["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                // The described action the proxy scored (older logs: the raw text).
                let text = c["action"].as_str().or(c["text"].as_str()).unwrap_or("").to_string();
                (text, c["logprob"].as_f64().unwrap_or(0.0) as f32, c["chosen"].as_bool().unwrap_or(false))
            })
            .collect()
    };
    let mut out = Vec::new();
    for id in order {
        let (Some(r), Some(ds)) = (reward.get(&id), decisions.get(&id)) else { continue };
        for (t, d) in ds.iter().enumerate() {
            let Some((action, logprob, _)) = cands(d).into_iter().find(|c| c.2) else { continue };
            let state = d["state"].as_str().unwrap_or("").to_string();
            // The picture the proxy's scorer read: the latest of the logged chat.
            let picture = crate::state::wire_state(&d["messages"]).2;
            let next = ds.get(t + 1).map(|n| cands(n).into_iter().map(|c| (c.0, c.1)).collect());
            out.push(TextStep {
                task: id.clone(),
                episode: id.clone(),
                full_state: state.clone(),
                state,
                picture,
                action,
                logprob,
                next_candidates: next.unwrap_or_default(),
                step: t,
                steps: ds.len(),
                success: kaizen_core::trajectory::is_success(*r as f32),
            });
        }
    }
    Ok(out)
}

/// Embeds every step (states, described actions, next candidates) through the cache and
/// builds the transitions; `describe` turns (full state, action) into the action's text. With
/// `picture_side > 0` each state's features end with its picture's thumbnail
/// (`picture::thumbnail`, zeros without one). Returns them and the share of texts served from
/// the cache.
pub fn transitions(
    steps: &[TextStep],
    describe: &dyn Fn(&str, &str) -> String,
    cache: &FeatureCache,
    gamma: f32,
    picture_side: usize,
) -> crate::error::Result<(Vec<Transition>, f64)> {
    let next_of = next_steps(steps);
    let mut texts: Vec<String> = Vec::new();
    for (s, next) in steps.iter().zip(&next_of) {
        texts.push(s.state.clone());
        texts.push(describe(&s.full_state, &s.action));
        if let Some(n) = next {
            texts.extend(next_candidates_described(&steps[*n], s, describe));
        }
    }
    texts.sort();
    texts.dedup();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (vecs, hits) = cache.embed(&refs)?;
    let table: HashMap<&str, &Vec<f32>> = refs.iter().copied().zip(vecs.iter()).collect();
    let get = |t: &str| table.get(t).map(|v| (*v).clone()).unwrap_or_default();
    let state_of = |s: &TextStep| -> crate::error::Result<Vec<f32>> {
        let mut v = get(&s.state);
        if picture_side > 0 {
            v.extend(
                thumbnail(s.picture.as_deref(), picture_side)
                    .map_err(|e| crate::error::QError::Input(format!("{}: {e}", s.task)))?,
            );
        }
        Ok(v)
    };
    let mut out = Vec::with_capacity(steps.len());
    for (s, next) in steps.iter().zip(&next_of) {
        // A step without a next one in its episode ends it (a log cut short ends there too).
        let done = next.is_none();
        let reward = if done && s.success { 1.0 } else { 0.0 };
        let next = match next {
            Some(n) => {
                let n = &steps[*n];
                let described = next_candidates_described(n, s, describe);
                let cands = described.iter().zip(&s.next_candidates).map(|(t, c)| (get(t), c.1)).collect();
                Some((state_of(n)?, cands))
            }
            None => None,
        };
        out.push(Transition {
            task: s.task.clone(),
            state_key: format!("{}#{}", s.task, s.state),
            state: state_of(s)?,
            action: get(&describe(&s.full_state, &s.action)),
            logprob: s.logprob,
            reward,
            done,
            mc_return: if s.success { gamma.powi(s.steps.saturating_sub(1 + s.step) as i32) } else { 0.0 },
            success: s.success,
            next,
        });
    }
    Ok((out, if refs.is_empty() { 0.0 } else { hits as f64 / refs.len() as f64 }))
}

/// For each step, the index of its next step: the following entry, when it is the same
/// episode's step `step + 1` and this step is not its episode's last; `None` otherwise.
/// Malformed or interleaved logs never link across episodes nor index past the end.
pub fn next_steps(steps: &[TextStep]) -> Vec<Option<usize>> {
    (0..steps.len())
        .map(|i| {
            let s = &steps[i];
            let n = steps.get(i + 1)?;
            (s.step + 1 < s.steps && n.episode == s.episode && n.step == s.step + 1).then_some(i + 1)
        })
        .collect()
}

/// The next state's candidates (logged on `s`), described in the next state.
fn next_candidates_described(next: &TextStep, s: &TextStep, describe: &dyn Fn(&str, &str) -> String) -> Vec<String> {
    s.next_candidates.iter().map(|(text, _)| describe(&next.full_state, text)).collect()
}

#[cfg(test)]
#[path = "dataset_tests.rs"]
mod tests;
