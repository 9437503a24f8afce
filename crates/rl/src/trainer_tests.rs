//! Unit tests of `trainer`'s pure parts (kept in their own file beside it); the loop itself is
//! tested end to end in `crates/cli/tests/cli.rs`.

use super::*;

#[test]
fn sft_stops_when_the_mean_of_the_last_ten_losses_reaches_the_target() {
    // Ten losses of mean 0.1 (0.05 and 0.15 alternating) reach 0.1, not 0.09.
    let ten: Vec<f64> = (0..10).map(|i| if i % 2 == 0 { 0.05 } else { 0.15 }).collect();
    assert!(reached_target(&ten, 0.1));
    assert!(!reached_target(&ten, 0.09));
    // Fewer than ten steps never stop; 0 turns the target off.
    assert!(!reached_target(&ten[..9], 1.0));
    assert!(!reached_target(&ten, 0.0));
    // Only the last ten count: an early high loss no longer matters.
    let mut eleven = vec![5.0];
    eleven.extend(&ten);
    assert!(reached_target(&eleven, 0.1));
}
