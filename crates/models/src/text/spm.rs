//! SentencePiece-style tokenisation from a GGUF vocabulary (`tokenizer.ggml.model = "llama"`:
//! pieces with scores, byte-fallback tokens `<0xXX>`), as Gemma and the original Llama use.
//!
//! Algorithm (the one llama.cpp applies to these files, so that ids agree): spaces become `▁`;
//! the text starts as one symbol per character; repeatedly the adjacent pair whose
//! concatenation is a vocabulary piece with the highest score (leftmost on ties) is merged;
//! each final symbol is its piece, or is split back along its merges, or falls back to bytes.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

const SPACE: &str = "\u{2581}";

pub struct SpmVocab {
    pieces: Vec<String>,
    scores: Vec<f32>,
    ids: HashMap<String, u32>,
    unk_id: u32,
    /// Whether a leading `▁` is added to text that starts the input or follows a special token.
    add_space_prefix: bool,
}

#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    /// Max-heap order: higher score first, then the leftmost pair.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
    }
}

impl SpmVocab {
    pub fn new(pieces: Vec<String>, scores: Vec<f32>, unk_id: u32, add_space_prefix: bool) -> Self {
        let ids = pieces.iter().enumerate().map(|(i, p)| (p.clone(), i as u32)).collect();
        SpmVocab { pieces, scores, ids, unk_id, add_space_prefix }
    }

    /// Tokenises one run of ordinary text (special tokens already split off).
    /// `after_special` is true at the start of the input and right after a special token.
    pub fn encode_fragment(&self, text: &str, after_special: bool, out: &mut Vec<u32>) {
        let mut s = String::with_capacity(text.len() + 3);
        if self.add_space_prefix && after_special {
            s.push_str(SPACE);
        }
        s.push_str(&text.replace(' ', SPACE));
        if s.is_empty() {
            return;
        }
        let mut symbols: Vec<Symbol> = Vec::new();
        for (i, (start, ch)) in s.char_indices().enumerate() {
            symbols.push(Symbol { start, len: ch.len_utf8(), prev: i.checked_sub(1), next: Some(i + 1) });
        }
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }
        let mut heap = BinaryHeap::new();
        let mut rev_merge: HashMap<String, (usize, usize)> = HashMap::new();
        let try_add = |l: usize,
                       r: usize,
                       symbols: &[Symbol],
                       heap: &mut BinaryHeap<Bigram>,
                       rev: &mut HashMap<String, (usize, usize)>| {
            let text = &s[symbols[l].start..symbols[r].start + symbols[r].len];
            if let Some(&id) = self.ids.get(text) {
                heap.push(Bigram { left: l, right: r, score: self.scores[id as usize], len: text.len() });
                rev.insert(text.to_string(), (l, r));
            }
        };
        for i in 1..symbols.len() {
            try_add(i - 1, i, &symbols, &mut heap, &mut rev_merge);
        }
        while let Some(b) = heap.pop() {
            let (l, r) = (symbols[b.left], symbols[b.right]);
            // Stale: one side was merged away, or already grew.
            if l.len == 0 || r.len == 0 || l.len + r.len != b.len {
                continue;
            }
            symbols[b.left].len += r.len;
            symbols[b.right].len = 0;
            symbols[b.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(b.left);
            }
            if let Some(p) = symbols[b.left].prev {
                try_add(p, b.left, &symbols, &mut heap, &mut rev_merge);
            }
            if let Some(n) = symbols[b.left].next {
                try_add(b.left, n, &symbols, &mut heap, &mut rev_merge);
            }
        }
        let mut i = Some(0);
        while let Some(k) = i {
            self.resegment(&s, &symbols, k, &rev_merge, out);
            i = symbols[k].next;
        }
    }

    fn resegment(
        &self,
        s: &str,
        symbols: &[Symbol],
        k: usize,
        rev: &HashMap<String, (usize, usize)>,
        out: &mut Vec<u32>,
    ) {
        let text = &s[symbols[k].start..symbols[k].start + symbols[k].len];
        if let Some(&id) = self.ids.get(text) {
            out.push(id);
        } else if let Some(&(l, r)) = rev.get(text) {
            self.resegment(s, symbols, l, rev, out);
            self.resegment(s, symbols, r, rev, out);
        } else {
            for b in text.bytes() {
                out.push(self.byte_token(b));
            }
        }
    }

    /// `<0xXX>`, else the byte itself as a piece, else unknown.
    fn byte_token(&self, b: u8) -> u32 {
        self.ids
            .get(&format!("<0x{b:02X}>"))
            .or_else(|| std::str::from_utf8(&[b]).ok().and_then(|c| self.ids.get(c)))
            .copied()
            .unwrap_or(self.unk_id)
    }

    /// The bytes a token stands for: `▁` → space, `<0xXX>` → that byte.
    pub fn piece_bytes(&self, id: u32) -> Vec<u8> {
        let Some(p) = self.pieces.get(id as usize) else {
            return Vec::new();
        };
        if p.len() == 6 && p.starts_with("<0x") && p.ends_with('>') {
            if let Ok(b) = u8::from_str_radix(&p[3..5], 16) {
                return vec![b];
            }
        }
        p.replace(SPACE, " ").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> SpmVocab {
        // Scores decide merge order: "▁the" (−1) beats everything; "he" (−2) beats "▁t" (−3).
        let mut pieces: Vec<String> = vec!["<unk>".into(), "▁".into(), "t".into(), "h".into(), "e".into(), "a".into()];
        let mut scores = vec![0.0, -10.0, -10.0, -10.0, -10.0, -10.0];
        for (p, s) in [("he", -2.0), ("▁t", -3.0), ("▁the", -1.0), ("▁a", -4.0)] {
            pieces.push(p.into());
            scores.push(s);
        }
        pieces.push("<0x21>".into()); // '!'
        scores.push(0.0);
        SpmVocab::new(pieces, scores, 0, false)
    }

    #[test]
    fn merges_by_score_and_falls_back_to_bytes() {
        let v = vocab();
        let mut out = Vec::new();
        // " the" → ▁ t h e: "he" merges first (−2), then "▁t"+"he" is not a piece, "▁" + "t"…
        // "▁t" (−3) merges, then "▁t"+"he" = "▁the" (−1) merges. One token.
        v.encode_fragment(" the", false, &mut out);
        assert_eq!(out, vec![8]);
        out.clear();
        // " a!" → "▁a" (9) then '!' via its byte token (10); "x" is neither piece nor byte → unk.
        v.encode_fragment(" a!x", false, &mut out);
        assert_eq!(out, vec![9, 10, 0]);
        assert_eq!(v.piece_bytes(8), b" the".to_vec());
        assert_eq!(v.piece_bytes(10), b"!".to_vec());
    }
}
