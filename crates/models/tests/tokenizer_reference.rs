//! kaizen's GGUF tokenizer against llama.cpp, the reference implementation, on a fixed corpus
//! (digits, unicode, chat and tool-call markup, whitespace). The expected ids were produced by
//! llama.cpp itself (`bench/tokenizer_reference.sh`) and are committed as a fixture.

use kaizen_models::arch::gguf::GgufFile;
use kaizen_models::text::tokenizer::GgufTokenizer;

#[test]
fn matches_llama_cpp_on_the_reference_corpus() {
    let g = GgufFile::open(&kaizen_models::home::gguf_path("smollm2").expect("run scripts/setup.sh")).unwrap();
    let tok = GgufTokenizer::from_gguf(&g).unwrap();
    let fixture = include_str!("fixtures/smollm2_llamacpp_tokens.jsonl");
    let mut checked = 0;
    for line in fixture.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        let got = tok.encode(text).unwrap();
        assert_eq!(got, want, "tokenising {text:?}");
        assert_eq!(tok.decode(&got), text, "round trip of {text:?}");
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} cases");
    // The chat markup in particular: <|im_start|> is one special token.
    assert_eq!(tok.encode("<|im_start|>user\n").unwrap(), vec![1, 4093, 198]);
}
