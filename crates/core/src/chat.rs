//! Chat messages, tool declarations and tool calls, in the shapes the OpenAI chat API uses,
//! so that they serialise to and from that API without a translation layer.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One chat turn. `tool_calls` is set on assistant turns that call tools; `tool_call_id`
/// on the tool turn that answers one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Images shown with the text, as URLs (`data:image/png;base64,…`): what a vision model
    /// sees besides `content`. Text-only models read `content` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None, images: Vec::new() }
    }
    /// The tool turn that shows an observation (its text and its images).
    pub fn observation(o: &crate::Observation) -> Self {
        Message { images: o.images.clone(), ..Self::new(Role::Tool, o.content.clone()) }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A call of a declared tool: a name and JSON arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// A tool declared with an OpenAI function schema:
/// `{"type": "function", "function": {"name", "description", "parameters"}}`.
/// Kept as JSON so that any schema a user writes passes through untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ToolSpec(pub serde_json::Value);

impl ToolSpec {
    /// A function tool from its name, description and JSON-schema parameters.
    pub fn function(name: &str, description: &str, parameters: serde_json::Value) -> ToolSpec {
        ToolSpec(serde_json::json!({"type": "function", "function": {
            "name": name, "description": description, "parameters": parameters,
        }}))
    }

    /// The function name, if the schema has one.
    pub fn name(&self) -> Option<&str> {
        self.0.get("function").and_then(|f| f.get("name")).and_then(|n| n.as_str())
    }
}
