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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_real_models_write() {
        let text = "Let me compute.\n<tool_call>\n{\"name\": \"python\", \"arguments\": {\"code\": \"print(17*23)\"}}\n</tool_call>";
        let calls = parse_tool_calls(text);
        assert_eq!(calls.len(), 1);
        let c = calls[0].as_ref().unwrap();
        assert_eq!((c.name.as_str(), c.arguments["code"].as_str()), ("python", Some("print(17*23)")));

        // Two calls, arguments as a JSON string, trailing text after the JSON, a code fence,
        // and an unterminated last call (the stop string removed its closing tag).
        let text =
            "<tool_call>{\"name\":\"calculator\",\"arguments\":\"{\\\"expr\\\": \\\"2+2\\\"}\"} thanks</tool_call>\
                    <tool_call>```json\n{\"name\": \"python\", \"parameters\": {\"code\": \"1\"}}\n```</tool_call>\
                    <tool_call>{\"name\": \"calculator\", \"arguments\": {\"expr\": \"3*3\"}}";
        let calls: Vec<ToolCall> = parse_tool_calls(text).into_iter().map(|c| c.unwrap()).collect();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].arguments["expr"], "2+2");
        assert_eq!(calls[1].arguments["code"], "1");
        assert_eq!(calls[2].arguments["expr"], "3*3");
        assert_eq!(calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec!["call_0", "call_1", "call_2"]);
    }

    #[test]
    fn malformed_calls_become_messages_for_the_model() {
        for (body, expect) in [
            ("", "empty tool call"),
            ("{\"name\": \"python\", \"arguments\": {\"code\": ", "not valid JSON"),
            ("[1, 2]", "must be a JSON object"),
            ("{\"arguments\": {}}", "no \"name\""),
            ("{\"name\": \"python\", \"arguments\": 5}", "\"arguments\" must be"),
            ("print(1)", "not valid JSON"),
        ] {
            let r = parse_tool_calls(&format!("<tool_call>{body}</tool_call>"));
            let e = r[0].as_ref().unwrap_err();
            assert!(e.message.contains(expect), "{body:?}: {}", e.message);
        }
        assert!(parse_tool_calls("no calls here").is_empty());
    }

    #[test]
    fn final_answers() {
        assert_eq!(final_answer("so \\boxed{391}."), Some("391".into()));
        assert_eq!(final_answer("\\boxed{\\frac{1}{2}}"), Some("\\frac{1}{2}".into()));
        assert_eq!(final_answer("<answer> 42 </answer>"), Some("42".into()));
        assert_eq!(final_answer("\\boxed{1} then <answer>2</answer>"), Some("2".into()));
        assert_eq!(final_answer("<answer>1</answer> then \\boxed{3}"), Some("3".into()));
        assert_eq!(final_answer("\\boxed{unclosed"), None);
        assert_eq!(final_answer("nothing"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn parser_never_panics(s in "(<tool_call>|</tool_call>|\\{|\\}|\"|name|arguments|:|,|\\\\boxed\\{|<answer>|</answer>|[ -~]|\\PC){0,40}") {
            let _ = parse_tool_calls(&s);
            let _ = final_answer(&s);
        }

        #[test]
        fn every_opened_block_yields_one_result(n in 0usize..5, junk in "[^<]{0,20}") {
            let text: String = (0..n).map(|i| format!("{junk}<tool_call>{{\"name\":\"t{i}\",\"arguments\":{{}}}}</tool_call>")).collect();
            let calls = parse_tool_calls(&text);
            prop_assert_eq!(calls.len(), n);
            for (i, c) in calls.iter().enumerate() {
                prop_assert_eq!(&c.as_ref().unwrap().name, &format!("t{i}"));
            }
        }
    }
}
