//! Unit tests of `jsonl` (kept in their own file beside it).

use super::*;

#[test]
fn a_torn_last_line_is_skipped_and_reported_anything_else_bad_is_an_error() {
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-jsonl-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let r: Records<serde_json::Value> = read(&file("a", b"{\"a\": 1}\n\n{\"b\": [1")).unwrap();
    assert_eq!((r.items.len(), r.torn), (1, Some(3)));
    // Cut inside a multi-byte character: torn too.
    let r: Records<serde_json::Value> = read(&file("b", b"{\"a\": 1}\n{\"b\": \"\xc3")).unwrap();
    assert_eq!((r.items.len(), r.torn), (1, Some(2)));
    let r: Records<serde_json::Value> = read(&file("c", b"{\"a\": 1}\n")).unwrap();
    assert_eq!((r.items.len(), r.torn), (1, None));
    let e = read::<serde_json::Value>(&file("d", b"{\"a\": 1}\nnot json\n{\"c\": 3}\n")).unwrap_err();
    assert!(e.ends_with("d line 2: expected ident at line 1 column 2"), "{e}");
}

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
