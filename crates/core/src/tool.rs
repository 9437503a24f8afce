//! The `Tool` trait: something the model can call by name with JSON arguments, answering with an
//! observation the model reads. A failed call is an observation too (`ok = false`), never a
//! crash: the model sees what went wrong and the metrics count it.

use crate::ToolSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// What the model reads.
    pub content: String,
    /// False for errors: bad arguments, unknown tool, a sandboxed program that failed or was
    /// stopped.
    pub ok: bool,
    /// Wall time of the call.
    pub elapsed_ms: f64,
    /// Images that come with it (`data:` URLs): a web page's screenshot for vision policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

impl Observation {
    pub fn ok(content: impl Into<String>) -> Self {
        Observation { content: content.into(), ok: true, elapsed_ms: 0.0, images: Vec::new() }
    }
    pub fn error(content: impl Into<String>) -> Self {
        Observation { content: content.into(), ok: false, elapsed_ms: 0.0, images: Vec::new() }
    }
}

pub trait Tool: Send + Sync {
    /// The OpenAI function schema the model is shown.
    fn spec(&self) -> ToolSpec;
    fn name(&self) -> &str;
    /// Runs one call. Must not panic on any `arguments`.
    fn call(&self, arguments: &serde_json::Value) -> Observation;
}
