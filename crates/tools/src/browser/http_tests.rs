//! Unit tests of `http` (kept in their own file beside it).

use super::*;

#[test]
fn responses_parse_or_say_why_not() {
    let ok = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length:12\r\n\r\n{\"value\":1}\n").unwrap();
    assert_eq!(ok, (200, serde_json::json!({"value": 1})));
    assert_eq!(parse_response(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().1, serde_json::Value::Null);
    assert!(matches!(parse_response(b""), Err(HttpError::Unreachable(_))));
    assert!(matches!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n<html>"), Err(HttpError::Malformed(_))));
    assert!(matches!(parse_response(b"garbage"), Err(HttpError::Malformed(_))));
    let cut = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"value\"";
    assert!(!response_complete(cut) && matches!(parse_response(cut), Err(HttpError::Unreachable(_))));
}
