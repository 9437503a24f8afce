//! Just enough HTTP/1.1 to talk JSON to chromedriver on loopback: one connection per request,
//! the body read by its `Content-Length` (chromedriver keeps connections open whatever the
//! request asks), with a deadline on every socket operation so a hung browser is an error,
//! never a hang.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum HttpError {
    /// Nothing listens there any more, or the connection broke mid-answer.
    Unreachable(String),
    /// No answer within the deadline.
    Timeout,
    /// An answer that is not HTTP with a JSON body.
    Malformed(String),
}

/// Sends `method path` with an optional JSON body; returns the status code and the JSON body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> Result<(u16, serde_json::Value), HttpError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => HttpError::Timeout,
        _ => HttpError::Unreachable(e.to_string()),
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        payload.len()
    );
    stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(payload.as_bytes())).map_err(io)?;
    read_response(&mut stream)
        .map_err(|e| match e {
            ReadError::Io(e) => io(e),
            ReadError::TooLarge(n) => HttpError::Malformed(format!("an answer of {n} bytes, over {MAX_RESPONSE}")),
        })
        .and_then(|raw| parse_response(&raw))
}

/// The most one chromedriver answer may hold (a screenshot is a few MB of base64).
pub const MAX_RESPONSE: usize = 64 << 20;

enum ReadError {
    Io(std::io::Error),
    TooLarge(usize),
}

/// Reads one answer: until its headers and `Content-Length` bytes of body have arrived (or
/// the connection closes), refusing one that declares or sends more than `MAX_RESPONSE`. The
/// end of the headers is searched for in each new chunk only, not in all that came before.
fn read_response(stream: &mut impl Read) -> Result<Vec<u8>, ReadError> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Where the answer ends, once the headers are in (`None`: until the connection closes).
    let mut end: Option<Option<usize>> = None;
    loop {
        let n = stream.read(&mut chunk).map_err(ReadError::Io)?;
        let scanned = raw.len();
        raw.extend_from_slice(&chunk[..n]);
        if end.is_none() {
            let from = scanned.saturating_sub(3);
            if let Some(p) = raw[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                let split = from + p;
                let length = content_length(&String::from_utf8_lossy(&raw[..split]));
                if let Some(len) = length.filter(|&len| len > MAX_RESPONSE) {
                    return Err(ReadError::TooLarge(len));
                }
                end = Some(length.map(|len| split + 4 + len));
            }
        }
        if raw.len() > MAX_RESPONSE + 64 * 1024 {
            return Err(ReadError::TooLarge(raw.len()));
        }
        if n == 0 || matches!(end, Some(Some(e)) if raw.len() >= e) {
            return Ok(raw);
        }
    }
}

/// The `Content-Length` a header block declares.
fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<usize>().ok()).flatten()
    })
}

/// True once the headers and `Content-Length` bytes of body have arrived.
fn response_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    content_length(&String::from_utf8_lossy(&raw[..split])).is_some_and(|n| raw.len() >= split + 4 + n)
}

/// Splits a raw response into status and JSON body.
fn parse_response(raw: &[u8]) -> Result<(u16, serde_json::Value), HttpError> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| {
        if raw.is_empty() {
            HttpError::Unreachable("connection closed without an answer".into())
        } else {
            HttpError::Malformed("no end of headers".into())
        }
    })?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Malformed(format!("bad status line: {}", head.lines().next().unwrap_or(""))))?;
    let body = &raw[split + 4..];
    if !response_complete(raw) && head.to_ascii_lowercase().contains("content-length") {
        return Err(HttpError::Unreachable("connection closed mid-answer".into()));
    }
    let json = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| HttpError::Malformed(format!("body is not JSON: {e}")))?
    };
    Ok((status, json))
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
