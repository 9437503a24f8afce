//! Unit tests of `dataset` (kept in their own file beside it).

use super::*;

#[test]
fn proxy_decisions_become_labelled_steps() {
    let log = [
        r#"{"episode_id":"a","state":"S0","candidates":[{"text":"x","logprob":-1.0,"chosen":false},{"text":"y","logprob":-2.0,"chosen":true}]}"#,
        r#"{"episode_id":"b","state":"T0","candidates":[{"text":"z","logprob":0.0,"chosen":true}]}"#,
        r#"{"episode_id":"a","state":"S1","candidates":[{"text":"w","logprob":-0.5,"chosen":true}]}"#,
        r#"{"feedback":{"episode_id":"a","reward":1.0}}"#,
        r#"{"episode_id":"c","sta"#,
    ]
    .join("\n");
    let steps = decision_steps(&log).unwrap();
    // Episode b has no feedback; the torn last line is skipped.
    assert_eq!(steps.len(), 2);
    assert_eq!((steps[0].action.as_str(), steps[0].logprob, steps[0].success), ("y", -2.0, true));
    assert_eq!(steps[0].next_candidates, vec![("w".to_string(), -0.5)]);
    assert_eq!((steps[1].step, steps[1].steps, steps[1].next_candidates.len()), (1, 2, 0));
    assert!(decision_steps("{bad\n{\"episode_id\":\"a\"}").unwrap_err().contains("line 1"));
}
