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

/// Yields its chunks one read at a time, then end of stream.
struct Chunks(Vec<Vec<u8>>);

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Ok(0);
        }
        let c = self.0.remove(0);
        buf[..c.len()].copy_from_slice(&c);
        Ok(c.len())
    }
}

#[test]
fn answers_are_read_by_length_across_chunks_and_refused_past_the_cap() {
    // The end of the headers split over two reads, the body over two more; what follows the
    // declared length is not waited for.
    let parts = [&b"HTTP/1.1 200 OK\r\nContent-Length: 11\r"[..], b"\n\r\n{\"val", b"ue\":1}", b"never read"];
    let raw = read_response(&mut Chunks(parts.iter().map(|p| p.to_vec()).collect())).ok().unwrap();
    assert_eq!(parse_response(&raw).unwrap(), (200, serde_json::json!({"value": 1})));
    assert!(!raw.ends_with(b"never read"));
    // A declared length over the cap is refused before any of the body is read.
    let huge = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", MAX_RESPONSE + 1);
    assert!(
        matches!(read_response(&mut Chunks(vec![huge.into_bytes()])), Err(ReadError::TooLarge(n)) if n == MAX_RESPONSE + 1)
    );
}
