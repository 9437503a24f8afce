//! Continuous batching of independent sequences on one local model — the engine under
//! concurrent episodes. Each slot is one sequence (an episode's token history) in its own row
//! of a shared KV cache. A slot generates a turn, pauses while its tool runs, and resumes with
//! the observation tokens appended; meanwhile every other generating slot keeps decoding, and
//! all of them decode together in one batched forward per step.
//!
//! Feeding schedule (what makes replay exact): tokens a slot has not yet fed — the prompt, or
//! the last sampled token plus an observation — go in as one chunk, by themselves; every
//! other sampled token is fed alone in the batched step. A chunk's numbers depend only on the
//! slot's own history, so `LocalLlm::score_trajectory` replays the same chunks and reproduces
//! the sampled log-probs exactly, whatever else was in the batch.

use crate::arch::llama::{KvCache, Logits};
use crate::runtime::local_llm::{LlmError, LocalLlm, TokenEvent};
use crate::runtime::stream::Stream;
use candle_core::Tensor;
use kaizen_core::{Completion, SamplingParams};

pub struct SequenceBatch<'m> {
    llm: &'m LocalLlm,
    cache: KvCache,
    slots: Vec<Slot>,
}

#[derive(Default)]
struct Slot {
    /// Token ids in the slot's cache row, in order.
    fed: Vec<u32>,
    turn: Option<Turn>,
    /// Whether another sequence will start with this one's first-turn prompt (`expect_repeat`);
    /// `None`: unknown, the prefix cache's doorkeeper decides.
    repeat: Option<bool>,
    /// The sequence's pictures in placeholder order (`show`).
    pictures: Vec<String>,
}

/// A continuation being generated in a slot.
struct Turn {
    stream: Stream,
    params: SamplingParams,
    prompt_tokens: usize,
    /// Which of its request's continuations (`start_choices`).
    choice: usize,
}

impl<'m> SequenceBatch<'m> {
    /// A batch of `slots` sequences; `reserve` positions per slot are allocated up front.
    pub fn new(llm: &'m LocalLlm, slots: usize, reserve: usize) -> Self {
        let mut cache = KvCache::with_rows(llm.model.cfg.n_layer, slots);
        cache.reserve(reserve.min(llm.context_len()));
        SequenceBatch { llm, cache, slots: (0..slots).map(|_| Slot::default()).collect() }
    }

    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Positions each slot's cache row holds now: the longest sequence any slot has held, as
    /// rows grow together and never shrink (a new batch starts small again).
    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    fn prefixes(&self) -> std::sync::MutexGuard<'_, crate::runtime::prefix_cache::PrefixCache> {
        self.llm.prefixes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Slots that are generating (not paused, not free).
    pub fn generating(&self) -> usize {
        self.slots.iter().filter(|s| s.turn.is_some()).count()
    }

    pub fn is_generating(&self, slot: usize) -> bool {
        self.slots.get(slot).is_some_and(|s| s.turn.is_some())
    }

    /// Says whether another sequence will start with the first-turn prompt of `slot`'s
    /// sequence (a GRPO group's next member, the next sample of a task): if so the whole prompt
    /// is kept in the prefix cache at once, if not it is never copied there. Unsaid, the cache
    /// keeps a prompt on its second sight. Cleared by `release`.
    pub fn expect_repeat(&mut self, slot: usize, repeat: bool) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.repeat = Some(repeat);
        }
    }

    /// Says which pictures `slot`'s sequence shows, in the order of its placeholder runs (all
    /// of them so far: an observation's pictures extend the list) — what a vision model's
    /// placeholders take as the slot's tokens are fed.
    pub fn show(&mut self, slot: usize, pictures: &[String]) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.pictures = pictures.to_vec();
        }
    }

    /// Empties `slot` for a new sequence.
    pub fn release(&mut self, slot: usize) {
        self.slots[slot] = Slot::default();
        self.cache.reset_row(slot);
    }

    /// Feeds a recorded history into the empty `slot` on the schedule it was generated on —
    /// the shared prefix as a chunk, then before each model-written token (`mask` 1) the tokens
    /// since the one before — so the cache holds what generating it computed, to the bit, and
    /// a continuation from it replays to its log-probs (`LocalLlm::score_trajectory` reads the
    /// same schedule). Stops at the last written token; `start` feeds the rest with the new
    /// turn. Does nothing in a slot that already holds tokens, or without a written token.
    pub fn prime(&mut self, slot: usize, ids: &[u32], mask: &[u8], shared_prefix: usize) -> Result<(), LlmError> {
        let s = self.slots.get(slot).ok_or_else(|| LlmError::InvalidRequest(format!("no slot {slot}")))?;
        if !s.fed.is_empty() || mask.len() != ids.len() {
            return Ok(());
        }
        let Some(last) = mask.iter().rposition(|&m| m == 1) else { return Ok(()) };
        self.llm.check_prompt(ids)?;
        self.llm.check_pictures(ids, &s.pictures)?;
        let first = mask.iter().position(|&m| m == 1).unwrap_or(ids.len());
        let mut fed = if shared_prefix < first {
            self.llm.feed_shared_prefix(ids, shared_prefix, &mut self.cache, slot)?
        } else {
            0
        };
        for i in (fed..=last).filter(|&i| mask[i] == 1 && i > 0) {
            let seen = self.llm.placeholders(&ids[..fed]);
            self.llm.feed(&ids[fed..i], seen, &self.slots[slot].pictures, &mut self.cache, slot)?;
            fed = i;
        }
        self.slots[slot].fed = ids[..fed].to_vec();
        Ok(())
    }

    /// Starts generating a continuation of `ids` in `slot`. `ids` extends what the slot
    /// already holds — the history is never re-tokenised, only new tokens are fed — and those
    /// new tokens are prefilled now, as one chunk; the first token is sampled from it.
    /// Returns the completion at once if that first token already ends it.
    ///
    /// In an empty slot, the first `shared_prefix` tokens (0: none) are a chunk of their own:
    /// copied from the model's prefix cache when another sequence computed them, computed and
    /// kept there otherwise — the same numbers either way (see `prefix_cache`); and the whole
    /// first-turn prompt with its last logits is kept too, for sequences that repeat it.
    pub fn start(
        &mut self,
        slot: usize,
        ids: &[u32],
        params: SamplingParams,
        shared_prefix: usize,
    ) -> Result<Option<Completion>, LlmError> {
        if params.n != 1 {
            return Err(LlmError::InvalidRequest("a batch slot samples one continuation (n = 1)".into()));
        }
        let mut done = self.start_choices(&[slot], ids, params, shared_prefix, &mut |_, _| {})?;
        Ok(done.pop().map(|(_, c)| c))
    }

    /// Starts the `params.n` continuations of one request, continuation `i` in `slots[i]`
    /// (all empty, or all holding the same history), as `LocalLlm::generate_after` samples
    /// them: the new tokens are prefilled once, in `slots[0]`, and that row is copied to the
    /// others; continuation `i` samples with `Stream::new(seed, i)`. Each first token is
    /// reported to `on_token(slot, event)`; the continuations already finished by it are
    /// returned with their slots.
    pub fn start_choices(
        &mut self,
        slots: &[usize],
        ids: &[u32],
        params: SamplingParams,
        shared_prefix: usize,
        on_token: &mut dyn FnMut(usize, TokenEvent),
    ) -> Result<Vec<(usize, Completion)>, LlmError> {
        params.validate().map_err(LlmError::InvalidRequest)?;
        if slots.is_empty() || slots.len() != params.n {
            return Err(LlmError::InvalidRequest(format!(
                "{} continuations need as many slots, got {}",
                params.n,
                slots.len()
            )));
        }
        if slots.iter().enumerate().any(|(i, s)| slots[..i].contains(s)) {
            return Err(LlmError::InvalidRequest(format!("continuations need distinct slots, got {slots:?}")));
        }
        self.llm.check_prompt(ids)?;
        if let Some(s) = self.slots.get(slots[0]) {
            self.llm.check_pictures(ids, &s.pictures)?;
        }
        for &slot in slots {
            let s = self.slots.get(slot).ok_or_else(|| LlmError::InvalidRequest(format!("no slot {slot}")))?;
            if s.turn.is_some() {
                return Err(LlmError::InvalidRequest(format!("slot {slot} is still generating")));
            }
            if !ids.starts_with(&s.fed) || ids.len() == s.fed.len() {
                return Err(LlmError::InvalidRequest(format!(
                    "slot {slot}: the new prompt must extend the {} tokens already fed",
                    s.fed.len()
                )));
            }
        }
        let row = self.prefill(slots[0], ids, shared_prefix)?;
        if slots.len() > 1 {
            let kv = self.cache.row_prefix(slots[0], ids.len())?;
            for &other in &slots[1..] {
                self.cache.reset_row(other);
                self.cache.load_row(other, &kv, ids.last().copied())?;
                self.slots[other].fed = ids.to_vec();
                self.slots[other].pictures = self.slots[slots[0]].pictures.clone();
            }
        }
        let room = self.llm.context_len() - ids.len();
        let mut done = Vec::new();
        for (choice, &slot) in slots.iter().enumerate() {
            let mut stream = Stream::new(params.seed, choice);
            let (token, text_delta, finish_reason) = stream.push(&row, &params, &self.llm.tokenizer, room);
            on_token(slot, TokenEvent { index: choice, token, text_delta, finish_reason });
            let turn = Turn { stream, params: params.clone(), prompt_tokens: ids.len(), choice };
            if turn.stream.finish.is_some() {
                done.push((slot, turn.stream.into_completion(turn.prompt_tokens)));
            } else {
                self.slots[slot].turn = Some(turn);
            }
        }
        Ok(done)
    }

    /// Feeds the tokens of `ids` that `slot` has not yet fed and returns the logits after the
    /// last one (through the prefix cache for a first turn, as `start` says).
    fn prefill(&mut self, slot: usize, ids: &[u32], shared_prefix: usize) -> Result<Vec<f32>, LlmError> {
        // A first turn (an empty slot, an opening to share): the whole prompt may be cached —
        // another member of the group, another sample of the task computed it.
        // A prompt showing pictures is not: the cache keys on ids, which do not tell them apart.
        let first_turn = self.slots[slot].fed.is_empty() && shared_prefix > 0 && self.llm.placeholders(ids) == 0;
        let whole = if first_turn { self.prefixes().get_prompt(ids) } else { None };
        Ok(match whole {
            Some((kv, row)) => {
                self.cache.load_row(slot, &kv, ids.last().copied())?;
                self.slots[slot].fed = ids.to_vec();
                row
            }
            None => {
                if self.slots[slot].fed.is_empty() {
                    let fed = self.llm.feed_shared_prefix(ids, shared_prefix, &mut self.cache, slot)?;
                    self.slots[slot].fed = ids[..fed].to_vec();
                }
                let chunk = &ids[self.slots[slot].fed.len()..];
                let seen = self.llm.placeholders(&self.slots[slot].fed);
                let logits = self.llm.feed(chunk, seen, &self.slots[slot].pictures, &mut self.cache, slot)?;
                let row = logits.squeeze(0)?.to_vec1::<f32>()?;
                self.slots[slot].fed.extend_from_slice(chunk);
                let keep = first_turn && {
                    let mut cache = self.prefixes();
                    match self.slots[slot].repeat {
                        Some(repeat) => repeat && cache.enabled(),
                        None => cache.admit_prompt(ids),
                    }
                };
                if keep {
                    let kv = self.cache.row_prefix(slot, ids.len())?;
                    self.prefixes().insert_prompt(ids.to_vec(), kv, row.clone());
                }
                row
            }
        })
    }

    /// One decoding step of every generating slot, batched. Returns the slots whose
    /// continuation finished, with it; those slots pause until `start` is called again.
    pub fn step(&mut self) -> Result<Vec<(usize, Completion)>, LlmError> {
        self.step_observed(&mut |_, _| {})
    }

    /// `step`, reporting each slot's new token to `on_token(slot, event)` (the event's `index`
    /// is the slot's continuation number from `start_choices`).
    pub fn step_observed(
        &mut self,
        on_token: &mut dyn FnMut(usize, TokenEvent),
    ) -> Result<Vec<(usize, Completion)>, LlmError> {
        // Each generating slot feeds the token it sampled last (`start` samples the first).
        let (rows, next): (Vec<usize>, Vec<u32>) =
            (0..self.slots.len()).filter_map(|i| Some((i, *self.slots[i].turn.as_ref()?.stream.ids.last()?))).unzip();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let dev = self.llm.model.device();
        let ids = Tensor::new(next.as_slice(), dev)?.unsqueeze(1)?;
        let logits = self.llm.model.forward_rows(&ids, &rows, &mut self.cache, Logits::Last)?.to_vec2::<f32>()?;
        let ctx = self.llm.context_len();
        let mut done = Vec::new();
        for ((&i, tok), row) in rows.iter().zip(next).zip(logits) {
            let slot = &mut self.slots[i];
            slot.fed.push(tok);
            if let Some(turn) = slot.turn.as_mut() {
                let (token, text_delta, finish_reason) =
                    turn.stream.push(&row, &turn.params, &self.llm.tokenizer, ctx - turn.prompt_tokens);
                on_token(i, TokenEvent { index: turn.choice, token, text_delta, finish_reason });
            }
            if let Some(t) = slot.turn.take_if(|t| t.stream.finish.is_some()) {
                done.push((i, t.stream.into_completion(t.prompt_tokens)));
            }
        }
        Ok(done)
    }
}
