use super::*;

fn w(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn tokens_split_words_and_punctuation() {
    assert_eq!(tokens("Tom has 12.5 Apples?"), w("tom has 12 . 5 apples ?"));
}

#[test]
fn bleu_matches_hand_computed_values() {
    // Identical: every precision 1, BP 1.
    assert!((sentence_bleu(&w("a b c d"), &w("a b c d")) - 1.0).abs() < 1e-12);
    // p = 3/4, 2/3, 1/2, (0 → 0.1)/1; BP = 1: (0.75 · 0.6667 · 0.5 · 0.1)^¼ = 0.025^¼.
    let got = sentence_bleu(&w("a b c d"), &w("a b c e"));
    assert!((got - 0.397_635_364).abs() < 1e-8, "{got}");
    // Short hypothesis: p = 1, 1, 0.1/1, 0.1/1 → 0.01^¼ = 0.316228; BP = e^(1 − 4/2) = e^−1.
    let got = sentence_bleu(&w("a b"), &w("a b c d"));
    assert!((got - 0.316_227_766 * 0.367_879_441).abs() < 1e-8, "{got}");
    // Clipping: "a a a a" against "a b c d" matches one unigram, not four.
    // p = 1/4, (0.1)/3, 0.1/2, 0.1/1 → (0.25 · 0.0333 · 0.05 · 0.1)^¼.
    let got = sentence_bleu(&w("a a a a"), &w("a b c d"));
    let want = (0.25f64 * (0.1 / 3.0) * 0.05 * 0.1).powf(0.25);
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    assert_eq!(sentence_bleu(&[], &w("a")), 0.0);
    // No unigram in common: 0, not a smoothed 0.1^¾ · (0.1/2)^¼.
    assert_eq!(sentence_bleu(&w("x y"), &w("a b")), 0.0);
}

#[test]
fn distances_are_symmetric_with_a_zero_diagonal() {
    let d = distances(&["a b c d".into(), "a b c e".into(), "a b".into()]);
    assert_eq!(d[0][0], 0.0);
    assert!((d[0][1] - (1.0 - 0.397_635_364)).abs() < 1e-8);
    assert_eq!(d[0][2], d[2][0]);
    // "a b" | "a b c d" and back: (0.116335 + BLEU("a b c d" | "a b")) / 2.
    // Reverse: p = 2/4, 1/3, 0.1/2, 0.1/1, BP 1 → (0.5 · 0.3333 · 0.05 · 0.1)^¼ = 0.169904.
    let reverse = (0.5f64 * (1.0 / 3.0) * 0.05 * 0.1).powf(0.25);
    let forward = 0.316_227_766 * 0.367_879_441;
    assert!((d[0][2] - (1.0 - (forward + reverse) / 2.0)).abs() < 1e-8);
}

#[test]
fn average_linkage_groups_close_pairs_and_keeps_chains_apart() {
    let d =
        vec![vec![0.0, 0.2, 0.9, 0.9], vec![0.2, 0.0, 0.9, 0.9], vec![0.9, 0.9, 0.0, 0.3], vec![0.9, 0.9, 0.3, 0.0]];
    assert_eq!(average_linkage(&d, 0.5), vec![0, 0, 1, 1]);
    assert_eq!(cluster_shares(&[0, 0, 1, 1]), vec![0.5; 4]);
    // A chain 0–1 (0.2), 1–2 (0.4), 0–2 (0.8): single linkage would join all three; after {0,1}
    // the mean distance to 2 is (0.8 + 0.4) / 2 = 0.6 ≥ 0.5, so 2 stays alone.
    let chain = vec![vec![0.0, 0.2, 0.8], vec![0.2, 0.0, 0.4], vec![0.8, 0.4, 0.0]];
    assert_eq!(average_linkage(&chain, 0.5), vec![0, 0, 1]);
    let shares = cluster_shares(&[0, 0, 1]);
    assert!((shares[0] - 2.0 / 3.0).abs() < 1e-12 && (shares[2] - 1.0 / 3.0).abs() < 1e-12);
    // Exactly at the threshold: not merged.
    assert_eq!(average_linkage(&[vec![0.0, 0.5], vec![0.5, 0.0]], 0.5), vec![0, 1]);
    assert!(average_linkage(&[], 0.5).is_empty());
}
