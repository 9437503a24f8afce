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

/// The records of a JSON-lines file, and the number of a torn last line that was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Records<T> {
    pub items: Vec<T>,
    /// 1-based line number of a last line cut short by a crash (skipped), if there was one.
    pub torn: Option<usize>,
}

/// Every record of the JSON-lines file at `path`: blank lines skipped, a last line cut short by
/// a crash skipped and reported in `torn`, any other bad line (not UTF-8, not a `T`) an error
/// naming the file and the line.
pub fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Records<T>, String> {
    let source = path.display().to_string();
    let mut bytes = std::fs::read(path).map_err(|e| format!("{source}: {e}"))?;
    // A last line cut short may end inside a multi-byte character: it is torn, not invalid.
    let mut cut_inside_character = None;
    if !bytes.ends_with(b"\n") {
        let cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if std::str::from_utf8(&bytes[cut..]).is_err() {
            cut_inside_character = Some(bytes[..cut].iter().filter(|&&b| b == b'\n').count() + 1);
            bytes.truncate(cut);
        }
    }
    let text = utf8(&bytes, &source)?;
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Records { items: Vec::new(), torn: cut_inside_character };
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<T>(line) {
            Ok(t) => out.items.push(t),
            Err(e) if is_torn(text, i, lines.len(), &e) => out.torn = Some(i + 1),
            Err(e) => return Err(format!("{source} line {}: {e}", i + 1)),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "jsonl_tests.rs"]
mod tests;
