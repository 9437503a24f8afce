//! The record of one episode, in the shape every consumer reads (trainers, the Q-function,
//! reports, `kaizen show`). Versioned: `schema_version` changes whenever a field's meaning does.
//!
//! Token-exact fields (local policies): `token_ids` is everything the policy saw and wrote, in
//! order, never re-tokenised; `loss_mask` is 1 exactly on tokens the policy wrote; `logprobs`
//! holds the sampling log-prob of each written token (0 elsewhere).

use crate::{Message, Observation, Task, ToolCall};
use serde::{Deserialize, Serialize};

pub const SCHEMA_VERSION: u32 = 1;

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub schema_version: u32,
    pub episode_id: String,
    pub env: String,
    pub policy: String,
    pub seed: u64,
    pub task: Task,
    pub turns: Vec<Turn>,
    pub token_ids: Vec<u32>,
    pub loss_mask: Vec<u8>,
    pub logprobs: Vec<f32>,
    /// Length of the initial prompt within `token_ids`.
    pub prompt_tokens: usize,
    /// How many leading prompt tokens were fed as a chunk of their own — the prefix every
    /// episode of the env shares, which the shared-prefix cache holds; replaying the episode
    /// (`LocalLlm::score_trajectory`) feeds them the same way. 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shared_prefix_tokens: usize,
    /// The pictures the token record shows, in the order of its placeholder runs (a vision
    /// model's episode, `kaizen_models::arch::vision`): what replaying and training feed there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_pictures: Vec<String>,
    pub final_answer: Option<String>,
    pub reward: f32,
    pub end: EpisodeEnd,
    pub timing: Timing,
    /// How `reward` was computed where the task's checker did not compute it (a curriculum
    /// task's self-consistency, tool calls and repetition cluster); null otherwise.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub reward_detail: serde_json::Value,
}

/// One assistant turn and the observations its tool calls produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// Messages for tool calls that could not be parsed.
    pub malformed: Vec<String>,
    /// One per tool call or malformed call, in order.
    pub observations: Vec<Observation>,
    /// Tokens the policy wrote this turn.
    pub generated_tokens: usize,
    /// Best-of-N: every distinct action the policy proposed at this step (the one taken
    /// included, a lone one too), whether or not it was taken; empty in plain episodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// Mean entropy (nats) of the sampling distribution over this turn's sampled tokens;
    /// absent where the sampler did not report it (remote servers, replays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f32>,
    /// The verifier's judgement of this step (Agent0-VL), where a verifier read the episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// A verifier's judgement of one solver step (Agent0-VL, `../shared/METHODS.md` §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// From −1 (the step is wrong) to 1 (it is right).
    pub score: f32,
    /// From 0 to 1: how sure the verifier is.
    pub confidence: f32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub critique: String,
    /// False when the verifier's output for this step could not be read (malformed, out of
    /// range, missing): the step then carries `Verdict::NEUTRAL`, which neither rewards nor
    /// penalises it and never opens a repair.
    pub parsed: bool,
    /// `Some(g_t)`: this step was re-derived after a verdict with gate `g_t` opened a repair
    /// (Agent0-VL), and pays `g_t · C_repair` for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair_gate: Option<f32>,
}

impl Verdict {
    /// What a step gets when the verifier said nothing readable about it: score 0 (no process
    /// reward beyond the tool's), full confidence (no repair).
    pub const NEUTRAL: Verdict =
        Verdict { score: 0.0, confidence: 1.0, critique: String::new(), parsed: false, repair_gate: None };
}

impl Turn {
    /// The turn as the chat showed it: the assistant's text (its closing tag restored when it
    /// called tools), then one tool message per observation.
    pub fn messages(&self) -> Vec<Message> {
        let calls = !self.tool_calls.is_empty() || !self.malformed.is_empty();
        let mut out = vec![Message::assistant(crate::tool_call::shown_text(&self.text, calls))];
        out.extend(self.observations.iter().map(Message::observation));
        out
    }
}

/// One proposed action of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub text: String,
    /// Sum of the policy's log-probs of its tokens (0 when the backend gives none).
    pub logprob: f32,
    /// The selector's score (Q for Best-of-Q), if it scores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    pub chosen: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EpisodeEnd {
    /// The policy gave a final answer (right or wrong).
    Answered,
    /// The policy stopped without a final answer.
    NoAnswer,
    MaxTurns,
    /// The episode's token budget or the context window ran out.
    MaxTokens,
    /// The env ended the episode (a web task was completed or failed on the page).
    EnvDone,
    /// The policy backend or the env failed; the episode is recorded as failed and the run
    /// goes on.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub generation_ms: f64,
    pub tool_ms: f64,
    pub total_ms: f64,
}

/// Whether a reward is a success: above one half. Checkers give 0 or 1, web pages −1 to 1; this
/// is the one place the threshold lives.
pub fn is_success(reward: f32) -> bool {
    reward > 0.5
}

impl Trajectory {
    /// Whether the episode succeeded (`is_success` of its reward).
    pub fn solved(&self) -> bool {
        is_success(self.reward)
    }
    /// Whether the policy called a tool (a well-formed call; a malformed one is not tool use).
    pub fn used_tool(&self) -> bool {
        self.tool_calls() > 0
    }
    pub fn tool_calls(&self) -> usize {
        self.turns.iter().map(|t| t.tool_calls.len()).sum()
    }
    pub fn malformed_calls(&self) -> usize {
        self.turns.iter().map(|t| t.malformed.len()).sum()
    }
    /// Where each turn's written tokens lie in `token_ids`: the runs of loss-mask-1 tokens after
    /// the prompt, in order (one per turn of a local policy's episode; a repaired turn's note,
    /// mask 0, comes just before its run). Empty without a token record.
    pub fn written_runs(&self) -> Vec<std::ops::Range<usize>> {
        let mask = &self.loss_mask;
        let mut runs = Vec::new();
        let mut i = self.prompt_tokens.min(mask.len());
        while i < mask.len() {
            if mask[i] == 1 {
                let start = i;
                while i < mask.len() && mask[i] == 1 {
                    i += 1;
                }
                runs.push(start..i);
            } else {
                i += 1;
            }
        }
        runs
    }

    pub fn generated_tokens(&self) -> usize {
        self.turns.iter().map(|t| t.generated_tokens).sum()
    }
}
