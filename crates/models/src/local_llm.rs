//! The local LLM runtime: a GGUF model, its tokenizer and chat template, and the one sampling
//! path every part of kaizen uses — `n` continuations of a prompt that share one prefill, each
//! token reported with its log-prob — plus teacher-forced scoring on the same numeric path.

use crate::chat_template::{ChatTemplate, TemplateError, CHATML};
use crate::gguf::{GgufError, GgufFile};
use crate::llama::{log_softmax_last, KvCache, LlamaModel, Logits, WeightFormat};
use crate::sampler;
use crate::tokenizer::{GgufTokenizer, TokenizerError};
use candle_core::{Device, Tensor};
use kaizen_core::{
    ChatRequest, Completion, FinishReason, Message, Policy, PolicyError, SamplingParams, TokenLogprob, ToolSpec,
    TopLogprob,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

impl From<LlmError> for PolicyError {
    fn from(e: LlmError) -> Self {
        match e {
            LlmError::InvalidRequest(m) => PolicyError::InvalidRequest(m),
            LlmError::Template(t) => PolicyError::InvalidRequest(t.to_string()),
            other => PolicyError::Backend(other.to_string()),
        }
    }
}

/// What a streaming caller sees after each sampled token.
pub struct TokenEvent<'a> {
    /// Which of the `n` continuations.
    pub index: usize,
    pub token: &'a TokenLogprob,
    /// New text that is safe to show (no half UTF-8 character, no half stop string).
    pub text_delta: &'a str,
    /// Set on the continuation's last event.
    pub finish_reason: Option<FinishReason>,
}

pub struct LocalLlm {
    name: String,
    pub model: LlamaModel,
    pub tokenizer: GgufTokenizer,
    template: ChatTemplate,
}

/// One continuation while it is being sampled.
struct Stream {
    rng: StdRng,
    ids: Vec<u32>,
    logprobs: Vec<TokenLogprob>,
    /// Length of the generated ids that count as text (all but a final stop token).
    text_ids: usize,
    text: String,
    /// `text[..committed_len]` is the decoding of `ids[..committed_ids]` and ends on a whole
    /// character, so later tokens never change it: only the tail after it is re-decoded.
    committed_ids: usize,
    committed_len: usize,
    emitted: usize,
    finish: Option<FinishReason>,
}

impl LocalLlm {
    pub fn load(path: &Path, format: WeightFormat) -> Result<Self, LlmError> {
        let g = GgufFile::open(path)?;
        // The architecture first: for a foreign model it is the error that matters.
        crate::llama::LlamaConfig::from_gguf(&g)?;
        let tokenizer = GgufTokenizer::from_gguf(&g)?;
        let model = LlamaModel::load(&g, format, &Device::Cpu)?;
        let source = g.get_str("tokenizer.chat_template").unwrap_or(CHATML).to_string();
        let bos = tokenizer.bos_id.and_then(|i| tokenizer.vocab_entry(i)).unwrap_or("").to_string();
        let eos = tokenizer.vocab_entry(tokenizer.eos_id).unwrap_or("").to_string();
        let template = ChatTemplate::new(&source, &bos, &eos)?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "local".into());
        Ok(LocalLlm { name, model, tokenizer, template })
    }

    /// Loads an installed model by name (`smollm2`), with an error naming the set-up command
    /// when it is missing.
    pub fn load_installed(name: &str, format: WeightFormat) -> anyhow::Result<Self> {
        let path = crate::home::gguf_path(name)?;
        Ok(Self::load(&path, format)?)
    }

    pub fn context_len(&self) -> usize {
        self.model.cfg.context_len
    }

    /// The prompt text of a chat, ending with the assistant header.
    pub fn render_chat(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<String, LlmError> {
        Ok(self.template.render(messages, tools, true)?)
    }

    pub fn encode_chat(&self, messages: &[Message], tools: &[ToolSpec]) -> Result<Vec<u32>, LlmError> {
        let text = self.render_chat(messages, tools)?;
        Ok(self.tokenizer.encode(&text)?)
    }

    /// Samples `params.n` continuations of `prompt`; they share one prefill and are then
    /// decoded together as a batch. `on_token` sees every token as it is produced and may
    /// return `false` to stop early (a client that went away).
    pub fn generate(
        &self,
        prompt: &[u32],
        params: &SamplingParams,
        on_token: &mut dyn FnMut(TokenEvent) -> bool,
    ) -> Result<Vec<Completion>, LlmError> {
        params.validate().map_err(LlmError::InvalidRequest)?;
        self.check_prompt(prompt)?;
        let ctx = self.context_len();
        let t_lp = sampler::logprob_temperature(params.temperature);
        let max_stop_len = params.stop.iter().map(String::len).max().unwrap_or(0);
        let dev = self.model.device();

        let mut cache = self.model.new_cache();
        cache.reserve((prompt.len() + params.max_tokens).min(ctx));
        let prefill = self.model.forward(&Tensor::new(prompt, dev)?.unsqueeze(0)?, &mut cache, Logits::Last)?;
        let first_row = prefill.squeeze(0)?.to_vec1::<f32>()?;
        if params.n > 1 {
            cache = cache.repeat_batch(params.n)?;
        }
        let mut streams: Vec<Stream> = (0..params.n)
            .map(|i| Stream {
                // Continuation i depends only on (seed, i), not on n.
                rng: StdRng::seed_from_u64(params.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                ids: Vec::new(),
                logprobs: Vec::new(),
                text_ids: 0,
                text: String::new(),
                committed_ids: 0,
                committed_len: 0,
                emitted: 0,
                finish: None,
            })
            .collect();
        // Batch row r of the cache holds stream `active[r]`.
        let mut active: Vec<usize> = (0..params.n).collect();
        let mut rows: Vec<Vec<f32>> = vec![first_row; params.n];
        let mut cancelled = false;

        loop {
            for (r, &si) in active.iter().enumerate() {
                let st = &mut streams[si];
                let lp = sampler::log_softmax(&rows[r], t_lp);
                let tok = if params.temperature <= 0.0 {
                    sampler::argmax(&lp)
                } else {
                    sampler::sample_token(&lp, params.top_k, params.top_p, &mut st.rng)
                };
                let top = sampler::top_k(&lp, params.top_logprobs)
                    .into_iter()
                    .map(|(id, logprob)| TopLogprob { token_id: id, token: self.tokenizer.token_text(id), logprob })
                    .collect();
                st.ids.push(tok);
                st.logprobs.push(TokenLogprob {
                    token_id: Some(tok),
                    token: self.tokenizer.token_text(tok),
                    logprob: lp[tok as usize],
                    top,
                });
                if self.tokenizer.stop_ids.contains(&tok) {
                    st.finish = Some(FinishReason::Stop);
                } else {
                    st.text_ids = st.ids.len();
                }
                // Incremental decoding: re-decode only the tokens after the last whole
                // character (byte-level and SentencePiece decodings concatenate there).
                // Text before this point did not change this step.
                let unchanged = st.committed_len;
                let pending = self.tokenizer.decode(&st.ids[st.committed_ids..st.text_ids]);
                st.text.truncate(st.committed_len);
                st.text.push_str(&pending);
                if !pending.ends_with('\u{FFFD}') {
                    st.committed_len = st.text.len();
                    st.committed_ids = st.text_ids;
                }
                if st.finish.is_none() {
                    // A new stop string overlaps changed text, so starts at most its length
                    // before it.
                    let mut from = unchanged.saturating_sub(max_stop_len);
                    while !st.text.is_char_boundary(from) {
                        from -= 1;
                    }
                    if let Some(cut) = first_stop(&st.text[from..], &params.stop).map(|c| c + from) {
                        st.text.truncate(cut);
                        st.finish = Some(FinishReason::Stop);
                    } else if st.ids.len() >= params.max_tokens || prompt.len() + st.ids.len() >= ctx {
                        st.finish = Some(FinishReason::Length);
                    }
                }
                let safe = if st.finish.is_some() { st.text.len() } else { safe_prefix_len(&st.text, &params.stop) };
                let delta = if safe > st.emitted { &st.text[st.emitted..safe] } else { "" };
                let keep_going = on_token(TokenEvent {
                    index: si,
                    token: st.logprobs.last().expect("pushed above"),
                    text_delta: delta,
                    finish_reason: st.finish,
                });
                st.emitted = st.emitted.max(safe);
                cancelled |= !keep_going;
            }
            if cancelled {
                break;
            }
            let still: Vec<u32> =
                (0..active.len() as u32).filter(|&r| streams[active[r as usize]].finish.is_none()).collect();
            if still.is_empty() {
                break;
            }
            if still.len() < active.len() {
                cache = cache.select_rows(&still)?;
                active = still.iter().map(|&r| active[r as usize]).collect();
            }
            let next: Vec<u32> =
                active.iter().map(|&si| *streams[si].ids.last().expect("one token per stream")).collect();
            let ids = Tensor::new(next.as_slice(), dev)?.unsqueeze(1)?;
            rows = self.model.forward(&ids, &mut cache, Logits::Last)?.to_vec2::<f32>()?;
        }

        Ok(streams
            .into_iter()
            .map(|st| Completion {
                text: st.text,
                token_ids: st.ids,
                logprobs: st.logprobs,
                finish_reason: st.finish.unwrap_or(FinishReason::Length),
                prompt_tokens: prompt.len(),
            })
            .collect())
    }

    /// Teacher-forced log-probs: for each token of `completion`, `log softmax(logits / T)` of
    /// the model given the prompt and the completion before it.
    ///
    /// The prompt is prefilled and the completion replayed one token at a time through the KV
    /// cache — the same kernels on the same shapes as `generate` — so a sampled completion
    /// scores back to exactly its own log-probs. (On quantised weights a one-pass forward
    /// differs: attention on other shapes changes the last float bits, which flip 8-bit
    /// activation roundings; see `score_parallel`.)
    pub fn score(&self, prompt: &[u32], completion: &[u32], temperature: f32) -> Result<Vec<f32>, LlmError> {
        self.check_scoring(prompt, completion)?;
        let dev = self.model.device();
        let t = sampler::logprob_temperature(temperature);
        let mut cache: KvCache = self.model.new_cache();
        cache.reserve(prompt.len() + completion.len());
        let mut row = self.model.forward(&Tensor::new(prompt, dev)?.unsqueeze(0)?, &mut cache, Logits::Last)?;
        let mut out = Vec::with_capacity(completion.len());
        for (i, &tok) in completion.iter().enumerate() {
            let lp = sampler::log_softmax(&row.squeeze(0)?.to_vec1::<f32>()?, t);
            out.push(lp[tok as usize]);
            if i + 1 < completion.len() {
                row = self.model.forward(&Tensor::new(&[tok], dev)?.unsqueeze(0)?, &mut cache, Logits::Last)?;
            }
        }
        Ok(out)
    }

    /// Teacher-forced log-probs in one forward pass over prompt + completion: much faster for
    /// long completions, exact with f32 weights, within ~0.1 nats of `score` on quantised ones.
    pub fn score_parallel(&self, prompt: &[u32], completion: &[u32], temperature: f32) -> Result<Vec<f32>, LlmError> {
        self.check_scoring(prompt, completion)?;
        let dev = self.model.device();
        let all: Vec<u32> = prompt.iter().chain(completion).copied().collect();
        let mut cache: KvCache = self.model.new_cache();
        let logits = self.model.forward(&Tensor::new(all.as_slice(), dev)?.unsqueeze(0)?, &mut cache, Logits::All)?;
        // Position p predicts token p + 1: rows L-1 .. L+C-2 predict the completion.
        let rows = logits.squeeze(0)?.narrow(0, prompt.len() - 1, completion.len())?;
        let t = sampler::logprob_temperature(temperature) as f64;
        let lp = log_softmax_last(&(rows / t)?)?;
        let idx = Tensor::new(completion, dev)?.unsqueeze(1)?;
        Ok(lp.gather(&idx, 1)?.squeeze(1)?.to_vec1::<f32>()?)
    }

    fn check_scoring(&self, prompt: &[u32], completion: &[u32]) -> Result<(), LlmError> {
        self.check_prompt(prompt)?;
        let total = prompt.len() + completion.len();
        if total > self.context_len() {
            return Err(LlmError::InvalidRequest(format!(
                "prompt + completion is {total} tokens; the context window is {}",
                self.context_len()
            )));
        }
        if let Some(bad) = completion.iter().find(|&&t| t as usize >= self.tokenizer.vocab_size) {
            return Err(LlmError::InvalidRequest(format!("token id {bad} is outside the vocabulary")));
        }
        Ok(())
    }

    fn check_prompt(&self, prompt: &[u32]) -> Result<(), LlmError> {
        if prompt.is_empty() {
            return Err(LlmError::InvalidRequest("the prompt is empty".into()));
        }
        if prompt.len() >= self.context_len() {
            return Err(LlmError::InvalidRequest(format!(
                "the prompt is {} tokens; the context window is {} (room is needed for at least one new token)",
                prompt.len(),
                self.context_len()
            )));
        }
        if let Some(bad) = prompt.iter().find(|&&t| t as usize >= self.tokenizer.vocab_size) {
            return Err(LlmError::InvalidRequest(format!("token id {bad} is outside the vocabulary")));
        }
        Ok(())
    }
}

impl Policy for LocalLlm {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        let prompt = self.encode_chat(&req.messages, &req.tools)?;
        Ok(self.generate(&prompt, &req.params, &mut |_| true)?)
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
