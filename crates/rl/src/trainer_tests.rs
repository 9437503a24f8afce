//! Unit tests of `trainer`'s pure parts (kept in their own file beside it); the loop itself is
//! tested end to end in `crates/cli/tests/cli.rs`.

use super::*;

#[test]
fn sft_stops_once_a_check_reaches_the_target_pass_rate() {
    assert!(reached(0.25, 0.25) && reached(0.5, 0.25));
    assert!(!reached(0.24, 0.25));
    // 0 turns the target off, whatever the pass rate.
    assert!(!reached(1.0, 0.0));
}

#[test]
fn tiny_policies_have_previous_token_embeddings_unless_turned_off() {
    let small = "[policy]\nlayers = 1\nwidth = 16\nheads = 2\ncontext = 32\n";
    let on = initial_policy(&Recipe::parse(small).unwrap()).unwrap();
    assert!(on.cfg.prev_token);
    let off = initial_policy(&Recipe::parse(&format!("{small}prev_token = false\n")).unwrap()).unwrap();
    assert!(!off.cfg.prev_token);
    assert_eq!(on.cfg.parameters() - off.cfg.parameters(), (on.cfg.vocab + 1) * 16);
}
