//! Unit tests of `metrics` (kept in their own file beside it).

use super::*;

#[test]
fn paired_difference_is_a_bootstrap_interval_matching_hand_computed_quantiles() {
    // d = 1,0,1,0 (a = 1,1,1,0; b = 0,1,0,0): a resample's mean is k/4, k ~ Bin(4, 1/2);
    // P(k = 0) = P(k = 4) = 1/16 > 2.5%, so the percentiles are 0 and 1; d̄ = 0.5.
    let (m, lo, hi) = paired_difference(&[true, true, true, false], &[false, true, false, false]).unwrap();
    assert_eq!((m, lo, hi), (0.5, 0.0, 1.0));
    // Nine wins in ten: k ~ Bin(10, 0.9); P(k ≤ 6) = 0.0128 < 2.5% < P(k ≤ 7) = 0.0702, so the
    // 2.5th percentile is 0.7; P(k = 10) = 0.349, so the 97.5th is 1.0.
    let a = [true; 10];
    let mut b = [false; 10];
    b[3] = true;
    let (m, lo, hi) = paired_difference(&a, &b).unwrap();
    assert!((m - 0.9).abs() < 1e-12 && (lo - 0.7).abs() < 1e-12 && hi == 1.0, "{m} {lo} {hi}");
    // Identical outcomes: no difference, no spread; the same input, the same interval.
    assert_eq!(paired_difference(&[true, false, true], &[true, false, true]), Some((0.0, 0.0, 0.0)));
    assert_eq!(paired_difference(&a, &b), paired_difference(&a, &b));
    assert_eq!(paired_difference(&[true], &[false]), None);
}

#[test]
fn wilson_by_hand() {
    // 8 of 10 at z = 1.96: (0.8 + 0.19208 ± 1.96·√(0.016 + 0.0009604)) / 1.38416 = (0.4902, 0.9433).
    let (lo, hi) = wilson_interval(8, 10, 1.96);
    assert!((lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3, "{lo} {hi}");
    let (lo, hi) = wilson_interval(0, 20, 1.96);
    assert!(lo == 0.0 && (hi - 0.1611).abs() < 1e-3, "{hi}");
    assert_eq!(wilson_interval(0, 0, 1.96), (0.0, 1.0));
}

#[test]
fn auc_by_hand() {
    // Successes 0.9, 0.4; failures 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4.
    assert_eq!(auc(&[0.9, 0.5, 0.4, 0.1], &[true, false, true, false]), Some(0.75));
    assert_eq!(auc(&[0.3, 0.3], &[true, false]), Some(0.5));
    assert_eq!(auc(&[0.3], &[true]), None);
}

#[test]
fn top1_counts_only_states_with_both_outcomes() {
    let groups = vec![
        vec![(0.9, true), (0.2, false)],               // right
        vec![(0.1, true), (0.6, false)],               // wrong
        vec![(0.5, true), (0.4, true)],                // one outcome: skipped
        vec![(0.3, false), (0.8, true), (0.1, false)], // right
    ];
    assert_eq!(top1_accuracy(&groups), Some(2.0 / 3.0));
    assert_eq!(top1_accuracy(&groups[2..3]), None);
}
