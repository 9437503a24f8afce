//! One continuation while it is being sampled: the token choice (temperature, top-k, top-p,
//! seeded), its log-prob, incremental detokenisation, stop tokens and stop strings. Every
//! sampling path — `LocalLlm::generate`'s `n` continuations and the continuous batch of
//! `SequenceBatch` — advances continuations through this one type, so they sample alike.

use crate::runtime::sampler;
use crate::text::tokenizer::GgufTokenizer;
use kaizen_core::{Completion, FinishReason, SamplingParams, TokenLogprob, TopLogprob};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub(crate) struct Stream {
    rng: StdRng,
    pub ids: Vec<u32>,
    pub logprobs: Vec<TokenLogprob>,
    /// Length of the generated ids that count as text (all but a final stop token).
    text_ids: usize,
    text: String,
    /// `text[..committed_len]` is the decoding of `ids[..committed_ids]` and ends on a whole
    /// character, so later tokens never change it: only the tail after it is re-decoded.
    committed_ids: usize,
    committed_len: usize,
    emitted: usize,
    pub finish: Option<FinishReason>,
}

impl Stream {
    /// Continuation `index` of a request with `seed`: it depends only on (seed, index), not on
    /// how many continuations there are.
    pub fn new(seed: u64, index: usize) -> Self {
        Stream {
            rng: StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ids: Vec::new(),
            logprobs: Vec::new(),
            text_ids: 0,
            text: String::new(),
            committed_ids: 0,
            committed_len: 0,
            emitted: 0,
            finish: None,
        }
    }

    /// Samples the next token from the model's `logits`, records it with its log-prob
    /// `log softmax(logits / T)`, and decides whether the continuation is finished
    /// (stop token, stop string, `max_tokens`, or `room` — the context left after the
    /// prompt). Returns the token, the new text that is safe to show, and the finish reason
    /// once finished.
    pub fn push(
        &mut self,
        logits: &[f32],
        params: &SamplingParams,
        tok: &GgufTokenizer,
        room: usize,
    ) -> (&TokenLogprob, &str, Option<FinishReason>) {
        let lp = sampler::log_softmax(logits, sampler::logprob_temperature(params.temperature));
        let id = if sampler::is_greedy(params.temperature) {
            sampler::argmax(&lp)
        } else {
            sampler::sample_token(&lp, params.top_k, params.top_p, &mut self.rng)
        };
        let top = sampler::top_k(&lp, params.top_logprobs)
            .into_iter()
            .map(|(id, logprob)| TopLogprob { token_id: id, token: tok.token_text(id), logprob })
            .collect();
        self.ids.push(id);
        let token = TokenLogprob {
            token_id: Some(id),
            token: tok.token_text(id),
            logprob: lp[id as usize],
            entropy: Some(sampler::entropy(&lp)),
            top,
        };
        if tok.stop_ids.contains(&id) {
            self.finish = Some(FinishReason::Stop);
        } else {
            self.text_ids = self.ids.len();
        }
        // Incremental decoding: re-decode only the tokens after the last whole character
        // (byte-level and SentencePiece decodings concatenate there). Text before this point
        // did not change this step.
        let unchanged = self.committed_len;
        let pending = tok.decode(&self.ids[self.committed_ids..self.text_ids]);
        self.text.truncate(self.committed_len);
        self.text.push_str(&pending);
        if !pending.ends_with('\u{FFFD}') {
            self.committed_len = self.text.len();
            self.committed_ids = self.text_ids;
        }
        if self.finish.is_none() {
            // A new stop string overlaps changed text, so starts at most its length before it.
            let max_stop_len = params.stop.iter().map(String::len).max().unwrap_or(0);
            let mut from = unchanged.saturating_sub(max_stop_len);
            while !self.text.is_char_boundary(from) {
                from -= 1;
            }
            if let Some(cut) = first_stop(&self.text[from..], &params.stop).map(|c| c + from) {
                self.text.truncate(cut);
                self.finish = Some(FinishReason::Stop);
            } else if self.ids.len() >= params.max_tokens || self.ids.len() >= room {
                self.finish = Some(FinishReason::Length);
            }
        }
        let safe = if self.finish.is_some() { self.text.len() } else { safe_prefix_len(&self.text, &params.stop) };
        let start = self.emitted.min(safe);
        self.emitted = self.emitted.max(safe);
        self.logprobs.push(token);
        (&self.logprobs[self.logprobs.len() - 1], &self.text[start..safe], self.finish)
    }

    pub fn into_completion(self, prompt_tokens: usize) -> Completion {
        Completion {
            text: self.text,
            token_ids: self.ids,
            logprobs: self.logprobs,
            finish_reason: self.finish.unwrap_or(FinishReason::Length),
            prompt_tokens,
        }
    }
}

/// Byte offset of the first stop string in `text`, if any.
fn first_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter_map(|s| text.find(s.as_str())).min()
}

/// How much of `text` can be shown while generation goes on: not a trailing replacement
/// character (half a UTF-8 sequence) nor a tail that could still become a stop string.
fn safe_prefix_len(text: &str, stops: &[String]) -> usize {
    let mut end = text.len();
    if text.ends_with('\u{FFFD}') {
        end -= '\u{FFFD}'.len_utf8();
    }
    let t = &text[..end];
    let mut hold = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            if t.ends_with(&s[..i]) {
                hold = hold.max(i);
            }
        }
    }
    end - hold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_are_found_and_held_back() {
        let stops = vec!["</tool_call>".to_string()];
        assert_eq!(first_stop("a</tool_call>b", &stops), Some(1));
        assert_eq!(safe_prefix_len("call </tool", &stops), "call ".len());
        assert_eq!(safe_prefix_len("call done", &stops), "call done".len());
        assert_eq!(safe_prefix_len("caf\u{FFFD}", &[]), 3);
    }
}
