//! Reading what a model wrote: tool calls in the Hermes / Qwen form
//! `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, and final answers in `\boxed{…}` or
//! `<answer>…</answer>`.
//!
//! The parser accepts what real models emit — whitespace and newlines, several calls in one
//! turn, JSON followed by trailing text, code fences, arguments given as a JSON string, a last
//! call whose closing tag was cut by the stop string — and turns anything else into an error
//! message meant for the model. It never panics (fuzzed in the tests).

use crate::ToolCall;
use serde_json::Value;

pub const OPEN: &str = "<tool_call>";
pub const CLOSE: &str = "</tool_call>";

/// A call written the way models are taught to write it:
/// `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>` (demonstrations, reference
/// agents, chat templates without native tool support, structured calls from servers).
pub fn format_call(name: &str, arguments: &Value) -> String {
    format!("{OPEN}\n{}\n{CLOSE}", serde_json::json!({"name": name, "arguments": arguments}))
}

/// A tool call the model tried to write but that cannot be run; the message is shown to it.
#[derive(Debug, Clone, PartialEq)]
pub struct MalformedCall {
    pub raw: String,
    pub message: String,
}

/// Every `<tool_call>` block in `text`, in order. An unterminated last block counts (generation
/// stops at the closing tag, which is then not part of the text).
pub fn parse_tool_calls(text: &str) -> Vec<Result<ToolCall, MalformedCall>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        let body_start = start + OPEN.len();
        let (body, next) = match rest[body_start..].find(CLOSE) {
            Some(end) => (&rest[body_start..body_start + end], &rest[body_start + end + CLOSE.len()..]),
            None => (&rest[body_start..], ""),
        };
        out.push(parse_body(body).map(|mut c| {
            c.id = format!("call_{}", out.len());
            c
        }));
        rest = next;
    }
    out
}

fn parse_body(body: &str) -> Result<ToolCall, MalformedCall> {
    let bad = |message: String| MalformedCall { raw: body.to_string(), message };
    let mut s = body.trim();
    // ```json … ``` fences some models put inside the tags.
    if let Some(inner) = s.strip_prefix("```") {
        let inner = inner.trim_start_matches(|c: char| c.is_ascii_alphabetic());
        s = inner.trim_end().strip_suffix("```").unwrap_or(inner).trim();
    }
    if s.is_empty() {
        return Err(bad(
            "empty tool call: write {\"name\": ..., \"arguments\": {...}} inside <tool_call></tool_call>".into()
        ));
    }
    // The first JSON value; trailing text after it is ignored.
    let first = serde_json::Deserializer::from_str(s).into_iter::<Value>().next();
    let v = match first {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(bad(format!("tool call is not valid JSON: {e}"))),
        None => return Err(bad("tool call has no JSON object".into())),
    };
    let Value::Object(map) = v else {
        return Err(bad("tool call must be a JSON object with \"name\" and \"arguments\"".into()));
    };
    let name = match map.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
        _ => return Err(bad("tool call has no \"name\" string".into())),
    };
    let arguments = match map.get("arguments").or_else(|| map.get("parameters")) {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(bad("\"arguments\" must be a JSON object".into())),
        },
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(bad("\"arguments\" must be a JSON object".into())),
    };
    Ok(ToolCall { id: String::new(), name, arguments })
}

/// The final answer: the content of the last `\boxed{…}` (nested braces allowed) or of the last
/// `<answer>…</answer>`, whichever comes later in the text; trimmed.
pub fn final_answer(text: &str) -> Option<String> {
    let boxed = text.rfind("\\boxed{").and_then(|i| {
        let start = i + "\\boxed{".len();
        let mut depth = 1usize;
        for (j, c) in text[start..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some((i, text[start..start + j].trim().to_string()));
                    }
                }
                _ => {}
            }
        }
        None
    });
    let tagged = text.rfind("<answer>").and_then(|i| {
        let start = i + "<answer>".len();
        text[start..].find("</answer>").map(|end| (i, text[start..start + end].trim().to_string()))
    });
    match (boxed, tagged) {
        (Some(b), Some(t)) => Some(if b.0 > t.0 { b.1 } else { t.1 }),
        (Some(x), None) | (None, Some(x)) => Some(x.1),
        (None, None) => None,
    }
}

/// The assistant turn as the conversation shows it: generation stops at the closing tag,
/// which is then not in the returned text, so a turn with calls gets it back.
pub fn shown_text(text: &str, has_calls: bool) -> String {
    if !has_calls || text.trim_end().ends_with(CLOSE) {
        text.to_string()
    } else {
        format!("{text}{CLOSE}")
    }
}

#[cfg(test)]
#[path = "tool_call_tests.rs"]
mod tests;
