//! Reading JSON-lines files (task files, run records): text that is not UTF-8 is an error that
//! names the file and the line, and a last line is taken as torn by a crash only when it was
//! really cut short — no newline at its end and the JSON ends early; a complete line that is
//! not a valid record is an error like any other.

/// `bytes` as text, or an error naming `source` and the line of the first invalid byte.
pub fn utf8<'a>(bytes: &'a [u8], source: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
        format!("{source} line {line}: not valid UTF-8 (byte {} of the file)", e.valid_up_to())
    })
}

/// Whether a line that failed to parse with `error` is the torn end of an interrupted write:
/// the file's last line, not ended by a newline, its JSON cut off before its end.
pub fn is_torn(text: &str, line_index: usize, line_count: usize, error: &serde_json::Error) -> bool {
    line_index + 1 == line_count && !text.ends_with('\n') && error.is_eof()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_names_its_line() {
        let e = utf8(b"{\"a\": 1}\n{\"b\": \"\xff\"}\n", "t.jsonl").unwrap_err();
        assert_eq!(e, "t.jsonl line 2: not valid UTF-8 (byte 16 of the file)");
        assert_eq!(utf8("é\n".as_bytes(), "t").unwrap(), "é\n");
    }

    #[test]
    fn only_a_line_cut_short_is_torn() {
        let err = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_err();
        let cut = "{\"a\": 1}\n{\"b\": [1, 2";
        assert!(is_torn(cut, 1, 2, &err("{\"b\": [1, 2")));
        // Ended by a newline: the write finished, so the line is bad, not torn.
        assert!(!is_torn("{\"a\": 1}\n{\"b\": [1, 2\n", 1, 2, &err("{\"b\": [1, 2")));
        // Complete JSON of the wrong shape, or a line that is not the last one: bad.
        assert!(!is_torn("{\"a\": 1}\n{\"b\" 2}", 1, 2, &err("{\"b\" 2}")));
        assert!(!is_torn(cut, 0, 2, &err("{\"b\": [1, 2")));
    }
}
