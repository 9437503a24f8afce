//! Unit tests of `openai` (kept in their own file beside it).

use super::*;

#[test]
fn lenient_parsing_of_real_server_shapes() {
    // content null, no top_logprobs, stop as a single string, parts-style content.
    let req: ChatCompletionRequest = serde_json::from_str(
        r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
             "function":{"name":"python","arguments":"{\"code\":\"print(1)\"}"}}]}],
            "stop":"\n","logprobs":true}"#,
    )
    .unwrap();
    let msgs = req.kaizen_messages().unwrap();
    assert_eq!(msgs[0].content, "hi");
    assert_eq!(msgs[1].tool_calls[0].arguments["code"], "print(1)");
    let p = req.sampling_params(64);
    assert_eq!((p.stop.clone(), p.max_tokens, p.top_logprobs, p.n), (vec!["\n".to_string()], 64, 0, 1));

    let resp: ChatCompletionResponse = serde_json::from_str(
        r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},
            "logprobs":{"content":[{"token":"ok","logprob":-0.5}]},"finish_reason":"length"}]}"#,
    )
    .unwrap();
    let c = resp.choices[0].to_completion(3);
    assert_eq!((c.text.as_str(), c.logprobs[0].logprob, c.finish_reason), ("ok", -0.5, FinishReason::Length));
    assert!(c.token_ids.is_empty());

    // Structured tool calls become Hermes text that the episode parser reads.
    let resp: ChatCompletionResponse = serde_json::from_str(
        r#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[{"id":"x","type":"function",
            "function":{"name":"calculator","arguments":"{\"expr\": \"17*23\"}"}}]},"finish_reason":"tool_calls"}]}"#,
    )
    .unwrap();
    let c = resp.choices[0].to_completion(0);
    let calls = crate::parse_tool_calls(&c.text);
    assert_eq!(calls.len(), 1);
    let call = calls[0].as_ref().unwrap();
    assert_eq!((call.name.as_str(), call.arguments["expr"].as_str()), ("calculator", Some("17*23")));
}

#[test]
fn unknown_role_names_the_message() {
    let req: ChatCompletionRequest =
        serde_json::from_str(r#"{"messages":[{"role":"user","content":"a"},{"role":"robot","content":"b"}]}"#).unwrap();
    let err = req.kaizen_messages().unwrap_err();
    assert!(err.starts_with("messages[1]: unknown role 'robot'"), "{err}");
}

#[test]
fn images_travel_as_image_url_parts() {
    let mut m = Message::user("Click OK.");
    m.images.push("data:image/png;base64,iVBORw0KGgo=".into());
    let wire = serde_json::to_value(WireMessage::from_message(&m)).unwrap();
    assert_eq!(
        wire["content"],
        serde_json::json!([{"type": "text", "text": "Click OK."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}])
    );
    // A plain message stays a plain string, and the parts read back to the same message.
    assert_eq!(serde_json::to_value(WireMessage::from_message(&Message::user("hi"))).unwrap()["content"], "hi");
    let back: WireMessage = serde_json::from_value(wire).unwrap();
    assert_eq!(back.to_message().unwrap(), m);
    let bad: WireMessage =
        serde_json::from_str(r#"{"role":"user","content":[{"type":"image_url","image_url":{}}]}"#).unwrap();
    assert_eq!(bad.to_message().unwrap_err(), "an image_url part needs image_url.url");
}
