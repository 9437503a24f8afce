//! Sampling options and what a sampler returns: tokens, text and per-token log-probs.

use serde::{Deserialize, Serialize};

/// How to sample a completion. The defaults match the OpenAI API's (temperature 1, top-p 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// Number of continuations of the same prompt (they share one prefill locally).
    pub n: usize,
    pub max_tokens: usize,
    /// 0 means greedy (argmax).
    pub temperature: f32,
    pub top_p: f32,
    /// 0 means no top-k cut.
    pub top_k: usize,
    /// Same seed, same prompt, same machine ⇒ same tokens.
    pub seed: u64,
    /// Generation stops when the text ends with one of these; the stop string is not returned.
    pub stop: Vec<String>,
    /// How many most likely alternatives to report next to each sampled token (0 = none).
    pub top_logprobs: usize,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            n: 1,
            max_tokens: 256,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: 0,
            stop: Vec::new(),
            top_logprobs: 0,
        }
    }
}

impl SamplingParams {
    /// Checks ranges; the message names the field and what it accepts.
    pub fn validate(&self) -> Result<(), String> {
        if self.n == 0 || self.n > 128 {
            return Err(format!("n must be in 1..=128, got {}", self.n));
        }
        if self.max_tokens == 0 {
            return Err("max_tokens must be at least 1, got 0".into());
        }
        if !(self.temperature >= 0.0 && self.temperature <= 10.0) {
            return Err(format!("temperature must be in [0, 10], got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if self.top_logprobs > 20 {
            return Err(format!("top_logprobs must be in 0..=20, got {}", self.top_logprobs));
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err("stop strings must not be empty".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context window is full.
    Length,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token_id: u32,
    pub token: String,
    pub logprob: f32,
}

/// One sampled token with its log-probability under the sampling distribution
/// (`log softmax(logits / T)`, with T = 1 for greedy decoding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// `None` when a remote server does not report ids.
    pub token_id: Option<u32>,
    pub token: String,
    pub logprob: f32,
    /// Entropy (nats) of the distribution the token was drawn from, `−Σ_v p_v log p_v` at the
    /// sampling temperature; `None` where it is unknown (a remote server, a replayed token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy: Option<f32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TopLogprob>,
}

/// One continuation of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    /// Exactly the ids the model produced (stop-string tokens included, EOS excluded); empty
    /// when a remote server does not report them.
    pub token_ids: Vec<u32>,
    /// One entry per generated token (same length as `token_ids` for local models).
    pub logprobs: Vec<TokenLogprob>,
    pub finish_reason: FinishReason,
    pub prompt_tokens: usize,
}

impl Completion {
    /// Sum of the per-token log-probs: the sequence log-likelihood.
    pub fn total_logprob(&self) -> f32 {
        self.logprobs.iter().map(|t| t.logprob).sum()
    }
}
