//! Unit tests of `proxy` (kept in their own file beside it).

use super::*;

#[test]
fn only_a_refusal_of_n_itself_is_answered_with_single_requests() {
    let err = |param: Value, message: &str| json!({"error": {"message": message, "param": param}});
    assert!(refused_n(StatusCode::BAD_REQUEST, &err(Value::Null, "n is not supported")));
    assert!(refused_n(StatusCode::BAD_REQUEST, &err(json!("n"), "bad value")));
    assert!(refused_n(StatusCode::UNPROCESSABLE_ENTITY, &err(Value::Null, "'logprobs' unsupported")));
    // Rate limits, auth, other parameters, and words that merely contain an n: passed back.
    assert!(!refused_n(StatusCode::TOO_MANY_REQUESTS, &err(json!("n"), "n is not supported")));
    assert!(!refused_n(StatusCode::UNAUTHORIZED, &err(Value::Null, "no key")));
    assert!(!refused_n(StatusCode::BAD_REQUEST, &err(json!("messages"), "invalid content")));
    assert!(!refused_n(StatusCode::BAD_REQUEST, &json!("plain text")));
    // kaizen serve's budget error mentions n but names max_tokens: passed back, or N
    // single requests would each get the budget the whole request was refused.
    assert!(!refused_n(StatusCode::BAD_REQUEST, &err(json!("max_tokens"), "n × (prompt + max_tokens) is over")));
}

#[test]
fn a_choice_without_a_message_is_a_bad_gateway() {
    let e = candidates_of(&[json!({"index": 0, "finish_reason": "stop"})]).unwrap_err();
    assert_eq!(e.status, StatusCode::BAD_GATEWAY);
    let ok = candidates_of(&[json!({"index": 0, "message": {"role": "assistant", "content": "hi"}})]).unwrap();
    assert_eq!(ok[0].0, "hi");
}
