//! Unit tests of `tool_call` (kept in their own file beside it).

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
    let text = "<tool_call>{\"name\":\"calculator\",\"arguments\":\"{\\\"expr\\\": \\\"2+2\\\"}\"} thanks</tool_call>\
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
