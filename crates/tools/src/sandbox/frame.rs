//! The sandbox server's answer frames: a header line `kaizen-sandbox NONCE LENGTH`, then exactly
//! LENGTH bytes of JSON. The nonce is fresh and random for every call, so a frame left on the
//! pipe by an earlier call (a stray line, a frame meant for the next call) is detected instead
//! of being taken as this call's result: no call can know a later call's nonce. It does not
//! authenticate the current call's answer — that call's code is a fork of the server and holds
//! the nonce; what keeps it from answering is that the pipe is out of its reach. The length is
//! checked against a cap before anything is read, so a server cannot make kaizen buffer more.

use std::io::Read;

const MAGIC: &str = "kaizen-sandbox";
/// Longest header accepted: the magic, a 16-hex-digit nonce, a decimal length.
const MAX_HEADER: usize = 64;

#[derive(Debug, PartialEq)]
pub enum FrameError {
    /// The pipe closed before a whole frame arrived.
    Closed,
    /// Something that is not a frame, or a frame over the cap.
    Malformed(String),
}

/// One frame as read: the nonce it names and its body.
#[derive(Debug, PartialEq)]
pub struct Frame {
    pub nonce: String,
    pub body: Vec<u8>,
}

/// Reads one frame, refusing a header longer than `MAX_HEADER` or a body over `max_body` bytes.
pub fn read_frame(r: &mut impl Read, max_body: usize) -> Result<Frame, FrameError> {
    let mut header = Vec::with_capacity(MAX_HEADER);
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) => return Err(FrameError::Closed),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => header.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(FrameError::Closed),
        }
        if header.len() > MAX_HEADER {
            return Err(FrameError::Malformed(format!("a header line over {MAX_HEADER} bytes")));
        }
    }
    let text = String::from_utf8_lossy(&header);
    let parts: Vec<&str> = text.split(' ').collect();
    let (nonce, len) = match parts.as_slice() {
        [MAGIC, nonce, len] => match len.parse::<usize>() {
            Ok(n) => (nonce.to_string(), n),
            Err(_) => return Err(FrameError::Malformed(format!("a bad length in {text:?}"))),
        },
        _ => return Err(FrameError::Malformed(format!("not a frame header: {text:?}"))),
    };
    if len > max_body {
        return Err(FrameError::Malformed(format!("a {len}-byte answer, over the {max_body}-byte cap")));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|_| FrameError::Closed)?;
    Ok(Frame { nonce, body })
}

/// A fresh nonce from the kernel's random source: 16 hex digits, unpredictable to the code of
/// an earlier call.
pub fn fresh_nonce() -> String {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer it is given.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        // Never reached on Linux ≥ 3.17 once the pool is seeded; still unique per call.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes = (t.unwrap_or(0) ^ n.rotate_left(32)).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8], cap: usize) -> Result<Frame, FrameError> {
        read_frame(&mut std::io::Cursor::new(bytes), cap)
    }

    #[test]
    fn a_frame_reads_exactly_its_length_and_leaves_the_rest() {
        let mut c = std::io::Cursor::new(b"kaizen-sandbox ab12 7\n{\"a\":1}kaizen-sandbox cd 2\n{}".to_vec());
        assert_eq!(read_frame(&mut c, 100), Ok(Frame { nonce: "ab12".into(), body: b"{\"a\":1}".to_vec() }));
        assert_eq!(read_frame(&mut c, 100), Ok(Frame { nonce: "cd".into(), body: b"{}".to_vec() }));
        assert_eq!(read_frame(&mut c, 100), Err(FrameError::Closed));
    }

    #[test]
    fn anything_else_is_refused_before_it_is_buffered() {
        // A bare JSON line (the old protocol, or a forged result) is not a frame.
        assert!(matches!(read(b"{\"stdout\": \"forged\"}\n", 100), Err(FrameError::Malformed(_))));
        // A length over the cap is refused without reading the body.
        assert!(matches!(read(b"kaizen-sandbox ab 101\n", 100), Err(FrameError::Malformed(m)) if m.contains("101")));
        // An endless header line stops at the header cap.
        assert!(matches!(read(&[b'x'; 10_000], 100), Err(FrameError::Malformed(_))));
        assert!(matches!(read(b"kaizen-sandbox ab -1\n", 100), Err(FrameError::Malformed(_))));
        // Cut short: closed, not a short body.
        assert_eq!(read(b"kaizen-sandbox ab 10\n{}", 100), Err(FrameError::Closed));
    }

    #[test]
    fn nonces_are_fresh() {
        let a = fresh_nonce();
        let b = fresh_nonce();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
