//! Renders a chat into the prompt text a model was trained on, with the Jinja template the
//! GGUF file carries (`tokenizer.chat_template`), evaluated by minijinja rather than by
//! string hacks.
//!
//! Templates that do not know about tools (SmolLM2's) get the tool schemas in the system turn
//! in the Hermes / Qwen form, and earlier tool calls written back as `<tool_call>` text, so
//! that every model sees tools the same way.

use kaizen_core::{Message, ToolSpec};
use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("chat template does not compile: {0}")]
    Compile(String),
    #[error("chat template failed to render: {0}")]
    Render(String),
}

pub struct ChatTemplate {
    env: Environment<'static>,
    knows_tools: bool,
    bos_token: String,
    eos_token: String,
}

/// The message shape templates index into (`message['role']`, `message['content']`, …).
#[derive(Serialize)]
struct TemplateMessage<'a> {
    role: &'a str,
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.to_string()).map_err(|e| TemplateError::Compile(e.to_string()))?;
        Ok(ChatTemplate {
            env,
            knows_tools: source.contains("tools"),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The prompt text for `messages`, ending with the assistant header when
    /// `add_generation_prompt` is set.
    pub fn render(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let mut msgs: Vec<TemplateMessage> = messages.iter().map(|m| self.template_message(m)).collect();
        if !tools.is_empty() && !self.knows_tools {
            let block = hermes_tools_block(tools);
            match msgs.first_mut() {
                Some(first) if first.role == "system" => first.content = format!("{}\n\n{block}", first.content),
                _ => msgs.insert(
                    0,
                    TemplateMessage {
                        role: "system",
                        content: format!("You are a helpful assistant.\n\n{block}"),
                        tool_calls: vec![],
                        tool_call_id: None,
                    },
                ),
            }
        }
        let tools_json: Option<Vec<&serde_json::Value>> =
            (!tools.is_empty()).then(|| tools.iter().map(|t| &t.0).collect());
        let tmpl = self.env.get_template("chat").map_err(|e| TemplateError::Render(e.to_string()))?;
        tmpl.render(context! {
            messages => msgs,
            tools => tools_json,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| TemplateError::Render(format!("{e:#}")))
    }

    fn template_message<'a>(&self, m: &'a Message) -> TemplateMessage<'a> {
        let mut content = m.content.clone();
        let mut tool_calls = Vec::new();
        for call in &m.tool_calls {
            if self.knows_tools {
                tool_calls.push(serde_json::json!({
                    "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }));
            } else {
                if !content.is_empty() {
                    content.push('\n');
                }
                content.push_str(&kaizen_core::tool_call::format_call(&call.name, &call.arguments));
            }
        }
        TemplateMessage { role: m.role.as_str(), content, tool_calls, tool_call_id: m.tool_call_id.as_deref() }
    }
}

/// The tool declaration block Hermes-format models (Qwen2.5, Hermes, …) are trained on.
pub fn hermes_tools_block(tools: &[ToolSpec]) -> String {
    let mut s = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for t in tools {
        s.push('\n');
        s.push_str(&t.0.to_string());
    }
    s.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments \
         within <tool_call></tool_call> XML tags:\n<tool_call>\n\
         {\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    s
}

/// ChatML, for models whose GGUF carries no template.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

#[cfg(test)]
#[path = "chat_template_tests.rs"]
mod tests;
