//! Unit tests of `prefix_cache` (kept in their own file beside it).

use super::*;
use candle_core::Device;

/// One layer's keys and values of `len` positions: 2 × len × 4 floats × 4 bytes.
fn kv(len: usize) -> PrefixKv {
    let t = Tensor::zeros((1, 1, len, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    vec![(t.clone(), t)]
}

#[test]
fn hits_count_saved_tokens_and_the_oldest_entry_goes_first() {
    // Budget 320 bytes: a 5-position entry is 2 · 5 · 4 · 4 = 160 bytes; two fit.
    let mut c = PrefixCache::new(320);
    assert!(c.get(&[1, 2, 3, 4, 5]).is_none());
    c.insert(vec![1, 2, 3, 4, 5], kv(5));
    c.insert(vec![6, 7, 8, 9, 10], kv(5));
    assert!(c.get(&[1, 2, 3, 4, 5]).is_some()); // now the more recently used
    c.insert(vec![11, 12, 13, 14, 15], kv(5)); // evicts [6..10]
    assert!(c.get(&[6, 7, 8, 9, 10]).is_none());
    assert!(c.get(&[1, 2, 3, 4, 5]).is_some() && c.get(&[11, 12, 13, 14, 15]).is_some());
    let s = c.stats();
    assert_eq!((s.lookups, s.hits, s.tokens_saved, s.evictions, s.bytes), (5, 3, 15, 1, 320));
    assert!((s.hit_rate() - 0.6).abs() < 1e-12);
    // A prefix only matches whole: [1..4] is not [1..5].
    assert!(c.get(&[1, 2, 3, 4]).is_none());
    // Larger than the budget: not kept, nothing evicted.
    c.insert(vec![0; 11], kv(11));
    assert_eq!(c.stats().evictions, 1);
    // A whole prompt with its logits: found only by `get_prompt`, which counts only hits.
    let mut p = PrefixCache::new(1000);
    p.insert_prompt(vec![1, 2], kv(2), vec![0.5, -1.0]);
    assert!(p.get_prompt(&[1, 2, 3]).is_none() && p.stats().lookups == 0);
    let (_, logits) = p.get_prompt(&[1, 2]).unwrap();
    assert_eq!(logits, vec![0.5, -1.0]);
    let s = p.stats();
    assert_eq!((s.lookups, s.hits, s.prompt_hits, s.tokens_saved, s.bytes), (1, 1, 1, 2, 2 * 2 * 4 * 4 + 8));
    // An opening entry has no logits: not a whole prompt.
    p.insert(vec![7], kv(1));
    assert!(p.get_prompt(&[7]).is_none());
    // Budget 0: the cache is off.
    let mut off = PrefixCache::new(0);
    off.insert(vec![1], kv(1));
    assert!(off.get(&[1]).is_none());
}

#[test]
fn a_whole_prompt_is_admitted_on_its_second_sight() {
    let mut p = PrefixCache::new(1 << 20);
    assert!(!p.admit_prompt(&[1, 2, 3]), "first sight: remembered, not kept");
    assert!(!p.admit_prompt(&[1, 2, 4]), "another prompt's first sight");
    assert!(p.admit_prompt(&[1, 2, 3]), "second sight: kept");
    assert!(!p.admit_prompt(&[1, 2, 3]), "admitted once; a third miss (evicted since) starts over");
    assert!(p.admit_prompt(&[1, 2, 4]));
    // The cache off: nothing is admitted, however often seen.
    let mut off = PrefixCache::new(0);
    assert!(!off.admit_prompt(&[7]) && !off.admit_prompt(&[7]) && !off.admit_prompt(&[7]));
}
