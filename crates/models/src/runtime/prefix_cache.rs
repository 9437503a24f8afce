//! Shared-prefix KV cache: the keys and values of prompt prefixes many sequences share (the
//! system turn, tool schemas and worked examples every episode of a run opens with), computed
//! once and copied into each new sequence's cache row instead of prefilled again.
//!
//! Exact by construction: a sequence's shared prefix is always fed as a chunk of its own from
//! an empty row (`SequenceBatch::start`, `LocalLlm::generate_after`; and
//! `LocalLlm::score_trajectory` replays the same split), so its keys and values are the same
//! numbers whether they were computed now or copied from the cache — a hit changes the time,
//! never a log-prob. (What follows the prefix is fed as before; an episode continued from
//! another's prefix, AXPO's, feeds its forced tokens as one chunk, which `score_trajectory`
//! does not replay bit for bit — as before the cache.)
//!
//! A second level holds whole first-turn prompts (opening and task) with the logits of their
//! last position: the members of a GRPO group, Agent0's k samples or any repeated task start
//! from it and only sample. They were computed by the same two chunks (opening, then the
//! rest), so this level is exact in the same way. A whole prompt is admitted on its second
//! sight (`admit_prompt`, a doorkeeper of hashes as in TinyLFU) unless its caller knows better
//! (`SequenceBatch::expect_repeat`: the episode engine knows which tasks it will start again):
//! copying every prompt's keys and values (~35 MB for a 765-token SmolLM2 prompt) into an
//! entry no later task reuses made runs of distinct tasks ~25% slower than the opening level
//! alone.
//!
//! Entries are keyed by the exact prefix token ids (a map of whole prefixes: the prompts that
//! share one share all of it, so a radix tree's partial matches would not add hits here), hold
//! `[1, kv_heads, len, head_dim]` copies per layer, and are evicted least recently used first
//! once their bytes pass the budget. The budget is per loaded model; a model whose weights
//! change is a new `LocalLlm` with an empty cache.

use candle_core::Tensor;
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Default budget: 1 GiB, about 23,000 prefix positions of SmolLM2-135M (30 layers × 3 KV
/// heads × 64 × 2 × 4 bytes = 46 KB a position) — twenty 1,000-token prompts.
pub const DEFAULT_BUDGET_BYTES: usize = 1 << 30;

static DEFAULT_BUDGET: AtomicUsize = AtomicUsize::new(DEFAULT_BUDGET_BYTES);

/// Sets the budget of every model loaded after this call (`kaizen --prefix-cache-mib`); 0 turns
/// the cache off (each prefix is computed every time, with the same numbers).
pub fn set_default_budget(bytes: usize) {
    DEFAULT_BUDGET.store(bytes, Ordering::Relaxed);
}

pub fn default_budget() -> usize {
    DEFAULT_BUDGET.load(Ordering::Relaxed)
}

/// Per-layer `(keys, values)` of one prefix.
pub type PrefixKv = Vec<(Tensor, Tensor)>;

/// How the cache has been used since the model was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixStats {
    /// Sequences that looked for their prompt's opening (and, first, the whole prompt).
    pub lookups: usize,
    /// Those that found one of them.
    pub hits: usize,
    /// Those that found the whole prompt (only sampling left to do).
    pub prompt_hits: usize,
    /// Prefix positions copied instead of computed.
    pub tokens_saved: usize,
    pub evictions: usize,
    /// Bytes held now.
    pub bytes: usize,
}

impl PrefixStats {
    /// The change from `before` to `self` (bytes: as now).
    pub fn since(&self, before: &PrefixStats) -> PrefixStats {
        PrefixStats {
            lookups: self.lookups - before.lookups,
            hits: self.hits - before.hits,
            prompt_hits: self.prompt_hits - before.prompt_hits,
            tokens_saved: self.tokens_saved - before.tokens_saved,
            evictions: self.evictions - before.evictions,
            bytes: self.bytes,
        }
    }

    pub fn hit_rate(&self) -> f64 {
        self.hits as f64 / self.lookups.max(1) as f64
    }
}

struct Entry {
    kv: PrefixKv,
    /// Whole prompts: the logits after their last token.
    logits: Option<Vec<f32>>,
    bytes: usize,
    used: u64,
}

/// The most whole-prompt hashes the doorkeeper remembers; past it, it forgets them all (a
/// prompt seen once long ago is then admitted on its next two sights, never wrongly).
const DOORKEEPER_CAP: usize = 1 << 16;

pub struct PrefixCache {
    budget: usize,
    entries: HashMap<Vec<u32>, Entry>,
    /// Hashes of whole prompts seen once and not kept.
    seen_once: HashSet<u64>,
    clock: u64,
    stats: PrefixStats,
}

impl PrefixCache {
    pub fn new(budget: usize) -> Self {
        PrefixCache {
            budget,
            entries: HashMap::new(),
            seen_once: HashSet::new(),
            clock: 0,
            stats: PrefixStats::default(),
        }
    }

    /// Whether entries are kept at all (a budget of 0 turns the cache off).
    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Whether the whole prompt `ids`, just computed after a miss, should be kept
    /// (`insert_prompt`): yes on its second sight, no on its first (it is remembered) or when
    /// the cache is off. A hash collision only admits a prompt one sight early.
    pub fn admit_prompt(&mut self, ids: &[u32]) -> bool {
        if self.budget == 0 {
            return false;
        }
        let mut h = DefaultHasher::new();
        ids.hash(&mut h);
        let key = h.finish();
        if self.seen_once.remove(&key) {
            return true;
        }
        if self.seen_once.len() >= DOORKEEPER_CAP {
            self.seen_once.clear();
        }
        self.seen_once.insert(key);
        false
    }

    pub fn stats(&self) -> PrefixStats {
        self.stats
    }

    /// The cached keys and values of exactly `prefix`, counting the lookup.
    pub fn get(&mut self, prefix: &[u32]) -> Option<PrefixKv> {
        self.stats.lookups += 1;
        self.clock += 1;
        let e = self.entries.get_mut(prefix)?;
        e.used = self.clock;
        self.stats.hits += 1;
        self.stats.tokens_saved += prefix.len();
        Some(e.kv.clone())
    }

    /// The cached keys, values and last logits of exactly the whole prompt `ids`; counts a
    /// lookup and a hit only when found (a miss goes on to look up the opening, `get`).
    pub fn get_prompt(&mut self, ids: &[u32]) -> Option<(PrefixKv, Vec<f32>)> {
        self.clock += 1;
        let e = self.entries.get_mut(ids)?;
        let logits = e.logits.clone()?;
        e.used = self.clock;
        self.stats.lookups += 1;
        self.stats.hits += 1;
        self.stats.prompt_hits += 1;
        self.stats.tokens_saved += ids.len();
        Some((e.kv.clone(), logits))
    }

    /// Keeps a whole prompt's keys, values and last logits (`get_prompt`).
    pub fn insert_prompt(&mut self, ids: Vec<u32>, kv: PrefixKv, logits: Vec<f32>) {
        self.insert_entry(ids, kv, Some(logits));
    }

    /// Keeps `kv` for `prefix`, evicting the least recently used entries until it fits; an
    /// entry larger than the whole budget is not kept.
    pub fn insert(&mut self, prefix: Vec<u32>, kv: PrefixKv) {
        self.insert_entry(prefix, kv, None);
    }

    fn insert_entry(&mut self, prefix: Vec<u32>, kv: PrefixKv, logits: Option<Vec<f32>>) {
        let bytes: usize =
            kv.iter().map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes()).sum::<usize>()
                + logits.as_ref().map_or(0, |l| 4 * l.len());
        if bytes > self.budget || self.entries.contains_key(&prefix) {
            return;
        }
        while self.stats.bytes + bytes > self.budget {
            let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| k.clone()) else { break };
            if let Some(e) = self.entries.remove(&oldest) {
                self.stats.bytes -= e.bytes;
                self.stats.evictions += 1;
            }
        }
        self.clock += 1;
        self.stats.bytes += bytes;
        self.entries.insert(prefix, Entry { kv, logits, bytes, used: self.clock });
    }
}

#[cfg(test)]
#[path = "prefix_cache_tests.rs"]
mod tests;
