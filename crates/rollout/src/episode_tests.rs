//! Unit tests of `episode` (kept in their own file beside it).

use super::*;
use kaizen_core::Tool;
use serde_json::{json, Value};

struct Panics;

impl Tool for Panics {
    fn name(&self) -> &str {
        "boom"
    }
    fn spec(&self) -> ToolSpec {
        ToolSpec(json!({"type": "function", "function": {"name": "boom", "parameters": {"type": "object"}}}))
    }
    fn call(&self, _: &Value) -> Observation {
        panic!("index out of range in a tool")
    }
}

#[test]
fn a_panicking_tool_gives_an_error_observation_and_the_next_call_still_runs() {
    let mut registry = ToolRegistry::new();
    registry.add(Arc::new(Panics));
    registry.add(Arc::new(kaizen_tools::Calculator));
    let toolbox = Toolbox { registry: &registry, session: None, screenshots: false };
    let call = |name: &str, arguments: Value| Ok(ToolCall { id: String::new(), name: name.into(), arguments });
    let (obs, _) = toolbox.run(&[call("boom", json!({})), call("calculator", json!({"expression": "2+3"}))]);
    assert_eq!(obs.len(), 2);
    assert!(!obs[0].ok && obs[0].content.contains("panicked: index out of range in a tool"), "{:?}", obs[0]);
    assert!(obs[1].ok && obs[1].content == "5", "{:?}", obs[1]);
}
