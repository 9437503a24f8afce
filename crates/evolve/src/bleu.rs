//! Repetition in a batch of generated tasks (`../shared/METHODS.md` §4): sentence-BLEU between
//! tasks, the distance `1 − BLEU`, and average-linkage clustering at a threshold. A task in a
//! big cluster is a near-copy of others and is penalised by its cluster's share of the batch.

use std::collections::HashMap;

/// Words for BLEU: lower-cased runs of letters and digits, and every other non-space
/// character as a token of its own ("12.5" is `12`, `.`, `5`; "apples?" is `apples`, `?`).
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn ngrams(words: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for g in words.windows(n) {
        *counts.entry(g).or_insert(0) += 1;
    }
    counts
}

/// Smoothing for an order with no matching n-gram (Chen & Cherry's method 1, NLTK's
/// `SmoothingFunction().method1`): its numerator becomes this instead of 0.
pub const SMOOTHING_EPSILON: f64 = 0.1;

/// Sentence-BLEU-4 of `hypothesis` against one `reference`, uniform weights:
/// `BLEU = BP · exp(¼ Σₙ ln pₙ)`, `pₙ` the clipped n-gram precision
/// `Σ_g min(c_hyp(g), c_ref(g)) / max(1, #hyp n-grams)` for n = 1..4 (a zero numerator
/// replaced by ε = 0.1), `BP = 1` if `c > r` else `exp(1 − r/c)` (`c`, `r` the lengths).
/// 0 for an empty hypothesis, and 0 when no unigram matches (as NLTK returns before smoothing).
pub fn sentence_bleu(hypothesis: &[String], reference: &[String]) -> f64 {
    let c = hypothesis.len();
    if c == 0 || !hypothesis.iter().any(|w| reference.contains(w)) {
        return 0.0;
    }
    let mut log_sum = 0.0;
    for n in 1..=4 {
        let hyp = ngrams(hypothesis, n);
        let reff = ngrams(reference, n);
        let matched: usize = hyp.iter().map(|(g, &k)| k.min(reff.get(g).copied().unwrap_or(0))).sum();
        let total = c.saturating_sub(n - 1).max(1);
        let numerator = if matched == 0 { SMOOTHING_EPSILON } else { matched as f64 };
        log_sum += (numerator / total as f64).ln();
    }
    let r = reference.len() as f64;
    let bp = if c as f64 > r { 1.0 } else { (1.0 - r / c as f64).exp() };
    bp * (log_sum / 4.0).exp()
}

/// Pairwise distances `d(i, j) = 1 − (BLEU(xᵢ | xⱼ) + BLEU(xⱼ | xᵢ)) / 2`. BLEU is not
/// symmetric (brevity penalty, clipping); the mean of both directions makes `d` a symmetric
/// dissimilarity, as average linkage needs. `d(i, i) = 0`.
pub fn distances(texts: &[String]) -> Vec<Vec<f64>> {
    let toks: Vec<Vec<String>> = texts.iter().map(|t| tokens(t)).collect();
    let n = texts.len();
    let mut d = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let bleu = (sentence_bleu(&toks[i], &toks[j]) + sentence_bleu(&toks[j], &toks[i])) / 2.0;
            d[i][j] = 1.0 - bleu;
            d[j][i] = d[i][j];
        }
    }
    d
}

/// Average-linkage agglomerative clustering: start with every item alone; repeatedly merge the
/// two clusters whose mean pairwise distance is smallest while it is below `threshold` (as
/// scikit-learn's `distance_threshold`: at or above it, clusters stay apart). Returns each
/// item's cluster label, labels numbered by each cluster's first item.
pub fn average_linkage(d: &[Vec<f64>], threshold: f64) -> Vec<usize> {
    let mut clusters: Vec<Vec<usize>> = (0..d.len()).map(|i| vec![i]).collect();
    loop {
        let mut best: Option<(f64, usize, usize)> = None;
        for a in 0..clusters.len() {
            for b in a + 1..clusters.len() {
                let sum: f64 = clusters[a].iter().flat_map(|&i| clusters[b].iter().map(move |&j| d[i][j])).sum();
                let mean = sum / (clusters[a].len() * clusters[b].len()) as f64;
                if best.is_none_or(|(m, _, _)| mean < m) {
                    best = Some((mean, a, b));
                }
            }
        }
        match best {
            Some((mean, a, b)) if mean < threshold => {
                let moved = clusters.remove(b);
                clusters[a].extend(moved);
            }
            _ => break,
        }
    }
    let mut label = vec![0; d.len()];
    clusters.sort_by_key(|c| c.iter().copied().min());
    for (k, c) in clusters.iter().enumerate() {
        for &i in c {
            label[i] = k;
        }
    }
    label
}

/// Each item's cluster share `|C(i)| / B`, `B` the number of items.
pub fn cluster_shares(labels: &[usize]) -> Vec<f64> {
    let b = labels.len() as f64;
    labels.iter().map(|l| labels.iter().filter(|m| *m == l).count() as f64 / b).collect()
}

#[cfg(test)]
#[path = "bleu_tests.rs"]
mod tests;
