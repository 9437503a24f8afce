//! The OpenAI chat-completions and embeddings wire format, shared by kaizen's server and its
//! client. Request fields that servers disagree on are optional and lenient (real servers omit
//! `top_logprobs`, send `content: null`, or a single string for `stop`), and conversions to
//! kaizen's own types live here, in one place.

use crate::{Completion, FinishReason, Message, Role, SamplingParams, TokenLogprob, ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------- requests

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    #[serde(default)]
    pub model: String,
    pub messages: Vec<WireMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Not in OpenAI's API; vLLM, SGLang and llama.cpp accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    One(String),
    Many(Vec<String>),
}

impl StopField {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopField::One(s) => vec![s],
            StopField::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireMessage {
    pub role: String,
    /// A string, `null`, or a list of content parts (`[{"type": "text", "text": …}]`).
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireToolCall {
    #[serde(default)]
    pub id: String,
    #[serde(default = "function_type", rename = "type")]
    pub kind: String,
    pub function: WireFunction,
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireFunction {
    pub name: String,
    /// JSON text, as the API sends it.
    #[serde(default)]
    pub arguments: String,
}

impl ChatCompletionRequest {
    /// kaizen's sampling options from the request, with OpenAI's defaults.
    pub fn sampling_params(&self, default_max_tokens: usize) -> SamplingParams {
        SamplingParams {
            n: self.n.unwrap_or(1),
            max_tokens: self.max_completion_tokens.or(self.max_tokens).unwrap_or(default_max_tokens),
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            top_k: self.top_k.filter(|&k| k > 0).map(|k| k as usize).unwrap_or(0),
            seed: self.seed.unwrap_or(0),
            stop: self.stop.clone().map(StopField::into_vec).unwrap_or_default(),
            top_logprobs: if self.logprobs.unwrap_or(false) { self.top_logprobs.unwrap_or(0) } else { 0 },
        }
    }

    /// The chat as kaizen messages; an unknown role or malformed content is an error that
    /// names the message.
    pub fn kaizen_messages(&self) -> Result<Vec<Message>, String> {
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| m.to_message().map_err(|e| format!("messages[{i}]: {e}")))
            .collect()
    }

    /// Builds a request from kaizen types (what the client sends).
    pub fn from_parts(model: &str, messages: &[Message], tools: &[ToolSpec], p: &SamplingParams) -> Self {
        ChatCompletionRequest {
            model: model.to_string(),
            messages: messages.iter().map(WireMessage::from_message).collect(),
            n: Some(p.n),
            temperature: Some(p.temperature),
            top_p: Some(p.top_p),
            top_k: (p.top_k > 0).then_some(p.top_k as i64),
            seed: Some(p.seed),
            stop: (!p.stop.is_empty()).then(|| StopField::Many(p.stop.clone())),
            max_tokens: Some(p.max_tokens),
            max_completion_tokens: None,
            logprobs: Some(true),
            top_logprobs: (p.top_logprobs > 0).then_some(p.top_logprobs),
            stream: None,
            tools: tools.to_vec(),
            tool_choice: None,
        }
    }
}

impl WireMessage {
    pub fn to_message(&self) -> Result<Message, String> {
        let role = match self.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => return Err(format!("unknown role '{other}' (allowed: system, user, assistant, tool)")),
        };
        let mut images = Vec::new();
        let content = match &self.content {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for p in parts {
                    match p.get("type").and_then(Value::as_str) {
                        Some("text") => text.push_str(p.get("text").and_then(Value::as_str).unwrap_or("")),
                        Some("image_url") => match p["image_url"]["url"].as_str() {
                            Some(url) => images.push(url.to_string()),
                            None => return Err("an image_url part needs image_url.url".into()),
                        },
                        Some(other) => {
                            return Err(format!("content part type '{other}' is not supported (text, image_url)"))
                        }
                        None => return Err("content part without a type".into()),
                    }
                }
                text
            }
            Some(_) => return Err("content must be a string, null or a list of parts".into()),
        };
        let tool_calls = self
            .tool_calls
            .iter()
            .map(|c| ToolCall {
                id: c.id.clone(),
                name: c.function.name.clone(),
                // Arguments that are not JSON are kept as a string: the model wrote them.
                arguments: serde_json::from_str(&c.function.arguments)
                    .unwrap_or_else(|_| Value::String(c.function.arguments.clone())),
            })
            .collect();
        Ok(Message { role, content, tool_calls, tool_call_id: self.tool_call_id.clone(), images })
    }

    /// The wire form: plain text content, or content parts (text, then each image as an
    /// `image_url` part) when the message has images.
    pub fn from_message(m: &Message) -> Self {
        let content = if m.images.is_empty() {
            Value::String(m.content.clone())
        } else {
            let mut parts = vec![serde_json::json!({"type": "text", "text": m.content})];
            parts
                .extend(m.images.iter().map(|url| serde_json::json!({"type": "image_url", "image_url": {"url": url}})));
            Value::Array(parts)
        };
        WireMessage {
            role: m.role.as_str().to_string(),
            content: Some(content),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| WireToolCall {
                    id: c.id.clone(),
                    kind: function_type(),
                    function: WireFunction { name: c.name.clone(), arguments: c.arguments.to_string() },
                })
                .collect(),
            tool_call_id: m.tool_call_id.clone(),
        }
    }
}

// ---------------------------------------------------------------- responses

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: usize,
    #[serde(default)]
    pub message: WireMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<ChoiceLogprobs>,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// kaizen extension: the exact generated token ids (absent from other servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ids: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChoiceLogprobs {
    #[serde(default)]
    pub content: Option<Vec<WireTokenLogprob>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireTokenLogprob {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub logprob: f32,
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    #[serde(default)]
    pub top_logprobs: Vec<WireTopLogprob>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireTopLogprob {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub logprob: f32,
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: usize,
    #[serde(default)]
    pub completion_tokens: usize,
    #[serde(default)]
    pub total_tokens: usize,
}

pub fn finish_reason_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

pub fn wire_logprob(t: &TokenLogprob) -> WireTokenLogprob {
    WireTokenLogprob {
        token: t.token.clone(),
        logprob: t.logprob,
        bytes: Some(t.token.as_bytes().to_vec()),
        top_logprobs: t
            .top
            .iter()
            .map(|a| WireTopLogprob {
                token: a.token.clone(),
                logprob: a.logprob,
                bytes: Some(a.token.as_bytes().to_vec()),
            })
            .collect(),
    }
}

impl Choice {
    pub fn from_completion(index: usize, c: &Completion, with_logprobs: bool) -> Self {
        Choice {
            index,
            message: WireMessage {
                role: "assistant".into(),
                content: Some(Value::String(c.text.clone())),
                ..Default::default()
            },
            logprobs: with_logprobs
                .then(|| ChoiceLogprobs { content: Some(c.logprobs.iter().map(wire_logprob).collect()) }),
            finish_reason: Some(finish_reason_str(c.finish_reason).into()),
            token_ids: Some(c.token_ids.clone()),
        }
    }

    /// Back to a kaizen completion (what the client returns). Tool calls a server returned in
    /// the structured `tool_calls` field (vLLM and SGLang with a tool parser) are written into
    /// the text in the Hermes form, so episodes read them with the one parser they use for
    /// every model.
    pub fn to_completion(&self, prompt_tokens: usize) -> Completion {
        let mut text = match &self.message.content {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        for c in &self.message.tool_calls {
            let args: Value =
                serde_json::from_str(&c.function.arguments).unwrap_or(Value::String(c.function.arguments.clone()));
            text.push_str(&crate::tool_call::format_call(&c.function.name, &args));
        }
        let ids = self.token_ids.clone().unwrap_or_default();
        let logprobs: Vec<TokenLogprob> = self
            .logprobs
            .as_ref()
            .and_then(|l| l.content.as_ref())
            .map(|content| {
                content
                    .iter()
                    .enumerate()
                    .map(|(i, t)| TokenLogprob {
                        token_id: ids.get(i).copied(),
                        token: t.token.clone(),
                        logprob: t.logprob,
                        entropy: None,
                        top: t
                            .top_logprobs
                            .iter()
                            .map(|a| crate::TopLogprob {
                                token_id: u32::MAX,
                                token: a.token.clone(),
                                logprob: a.logprob,
                            })
                            .collect(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Completion {
            text,
            token_ids: ids,
            logprobs,
            finish_reason: match self.finish_reason.as_deref() {
                Some("length") => FinishReason::Length,
                _ => FinishReason::Stop,
            },
            prompt_tokens,
        }
    }
}

// ---------------------------------------------------------------- streaming

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: usize,
    pub delta: Delta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<ChoiceLogprobs>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

// ---------------------------------------------------------------- embeddings and errors

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    #[serde(default)]
    pub model: String,
    pub input: EmbeddingInput,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    pub object: String,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingData {
    pub object: String,
    pub index: usize,
    pub embedding: Vec<f32>,
}

/// `{"error": {"message", "type", "param", "code"}}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
