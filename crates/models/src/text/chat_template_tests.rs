//! Unit tests of `chat_template` (kept in their own file beside it).

use super::*;
use kaizen_core::ToolCall;

const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[test]
fn smollm2_template_adds_default_system_and_generation_prompt() {
    let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    let out = t.render(&[Message::user("Hi")], &[], true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn tools_go_into_system_turn_for_templates_without_tools() {
    let t = ChatTemplate::new(SMOLLM2, "", "").unwrap();
    let tool = ToolSpec(serde_json::json!({"type": "function", "function": {"name": "calculator", "parameters": {}}}));
    let out = t.render(&[Message::system("Be brief."), Message::user("2+2?")], &[tool], true).unwrap();
    assert!(out.starts_with("<|im_start|>system\nBe brief.\n\n# Tools"), "{out}");
    assert!(out.contains("\"name\":\"calculator\""), "{out}");
    assert_eq!(out.matches("<|im_start|>system").count(), 1);
}

#[test]
fn earlier_tool_calls_are_written_back_as_hermes_text() {
    let t = ChatTemplate::new(SMOLLM2, "", "").unwrap();
    let mut a = Message::assistant("");
    a.tool_calls.push(ToolCall {
        id: "1".into(),
        name: "python".into(),
        arguments: serde_json::json!({"code": "print(1)"}),
    });
    let out = t.render(&[Message::system("s"), Message::user("u"), a], &[], false).unwrap();
    assert!(out.contains("<|im_start|>assistant\n<tool_call>\n{\"arguments\":{\"code\":\"print(1)\"},\"name\":\"python\"}\n</tool_call><|im_end|>"), "{out}");
}

#[test]
fn template_errors_are_values_not_panics() {
    assert!(ChatTemplate::new("{% for x in %}", "", "").is_err());
    let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
    let err = t.render(&[Message::user("x")], &[], true).unwrap_err().to_string();
    assert!(err.contains("no system role"), "{err}");
}
