//! Running one episode: the policy writes, calls tools, reads observations, answers.
//!
//! With a local model the episode is token-exact: the prompt is tokenised once, generated ids
//! are appended as produced, and each observation is appended as the tokens of the chat
//! template's text between the assistant turn and the next assistant header — the history is
//! never re-tokenised. With a remote policy the episode runs on messages (no ids).

use crate::trajectory::{EpisodeEnd, Timing, Trajectory, Turn, SCHEMA_VERSION};
use kaizen_core::tool_call::{parse_tool_calls, CLOSE};
use kaizen_core::{
    final_answer, ChatRequest, Completion, Env, Message, Observation, Policy, Role, SamplingParams, Task, ToolSpec,
};
use kaizen_models::LocalLlm;
use kaizen_tools::ToolRegistry;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct EpisodeConfig {
    pub max_turns: usize,
    pub max_tokens_per_turn: usize,
    pub max_episode_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
}

impl Default for EpisodeConfig {
    fn default() -> Self {
        EpisodeConfig { max_turns: 4, max_tokens_per_turn: 256, max_episode_tokens: 1024, temperature: 0.0, top_p: 1.0 }
    }
}

/// Who writes the assistant turns.
pub enum Agent<'a> {
    Local(&'a LocalLlm),
    Remote(&'a dyn Policy),
}

impl Agent<'_> {
    pub fn name(&self) -> String {
        match self {
            Agent::Local(l) => l.name().to_string(),
            Agent::Remote(p) => p.name().to_string(),
        }
    }
}

/// The running conversation, in the form the agent needs.
enum History<'a> {
    Tokens { llm: &'a LocalLlm, ids: Vec<u32>, mask: Vec<u8>, logprobs: Vec<f32>, messages: Vec<Message> },
    Messages { policy: &'a dyn Policy, messages: Vec<Message> },
}

/// Marks where the assistant's text sits in a rendered template.
const SENTINEL: &str = "\u{E000}kaizen-assistant-turn\u{E001}";

impl History<'_> {
    fn generate(&mut self, tools: &[ToolSpec], params: &SamplingParams) -> Result<Completion, String> {
        match self {
            History::Tokens { llm, ids, .. } => {
                llm.generate(ids, params, &mut |_| true).map_err(|e| e.to_string()).map(|mut c| c.remove(0))
            }
            History::Messages { policy, messages } => policy
                .chat(&ChatRequest { messages: messages.clone(), tools: tools.to_vec(), params: params.clone() })
                .map_err(|e| e.to_string())
                .and_then(|mut c| if c.is_empty() { Err("no completion".into()) } else { Ok(c.remove(0)) }),
        }
    }

    /// Records the assistant's turn (its exact tokens, when there are any).
    fn push_assistant(&mut self, c: &Completion, text_for_history: &str) {
        match self {
            History::Tokens { ids, mask, logprobs, messages, .. } => {
                ids.extend(&c.token_ids);
                mask.extend(std::iter::repeat_n(1u8, c.token_ids.len()));
                logprobs.extend(c.logprobs.iter().map(|t| t.logprob));
                messages.push(Message::assistant(text_for_history));
            }
            History::Messages { messages, .. } => messages.push(Message::assistant(text_for_history)),
        }
    }

    fn push_observations(&mut self, tools: &[ToolSpec], obs: &[Observation]) -> Result<(), String> {
        let tool_msgs: Vec<Message> = obs.iter().map(|o| Message::new(Role::Tool, o.content.clone())).collect();
        match self {
            History::Tokens { llm, ids, mask, logprobs, messages } => {
                let text = observation_segment(llm, messages, tools, &tool_msgs)?;
                let seg = llm.tokenizer.encode(&text).map_err(|e| e.to_string())?;
                ids.extend(&seg);
                mask.extend(std::iter::repeat_n(0u8, seg.len()));
                logprobs.extend(std::iter::repeat_n(0.0f32, seg.len()));
                messages.extend(tool_msgs);
            }
            History::Messages { messages, .. } => messages.extend(tool_msgs),
        }
        Ok(())
    }

    fn context_left(&self) -> usize {
        match self {
            History::Tokens { llm, ids, .. } => llm.context_len().saturating_sub(ids.len() + 1),
            History::Messages { .. } => usize::MAX,
        }
    }
}

/// The text that follows an assistant turn when tool results come back, up to and including
/// the next assistant header — exactly what the chat template would render there. Found by
/// rendering the conversation with a sentinel as the last assistant turn's content.
pub fn observation_segment(
    llm: &LocalLlm,
    history: &[Message],
    tools: &[ToolSpec],
    tool_msgs: &[Message],
) -> Result<String, String> {
    let mut probe = history.to_vec();
    match probe.last_mut() {
        Some(last) if last.role == Role::Assistant => last.content = SENTINEL.to_string(),
        _ => return Err("observations must follow an assistant turn".into()),
    }
    probe.extend(tool_msgs.iter().cloned());
    let rendered = llm.render_chat(&probe, tools).map_err(|e| e.to_string())?;
    let at = rendered.rfind(SENTINEL).ok_or("the chat template dropped the assistant turn")?;
    Ok(rendered[at + SENTINEL.len()..].to_string())
}

/// Runs one episode of `task`. Never fails: a backend error ends the episode as `Error`.
pub fn run_episode(
    agent: &Agent,
    env: &dyn Env,
    registry: &ToolRegistry,
    task: &Task,
    cfg: &EpisodeConfig,
    seed: u64,
    episode_id: &str,
) -> Trajectory {
    let start = Instant::now();
    let allowed = env.tool_names();
    let tools: Vec<ToolSpec> =
        registry.specs().into_iter().filter(|s| s.name().is_some_and(|n| allowed.iter().any(|a| a == n))).collect();
    let messages = vec![Message::system(env.system_prompt()), Message::user(task.prompt.clone())];
    let mut timing = Timing::default();
    let mut turns = Vec::new();
    let mut end = EpisodeEnd::MaxTurns;
    let mut answer = None;

    let mut history = match agent {
        Agent::Local(llm) => match llm.encode_chat(&messages, &tools) {
            Ok(ids) => {
                let n = ids.len();
                History::Tokens { llm, ids, mask: vec![0; n], logprobs: vec![0.0; n], messages }
            }
            Err(e) => {
                end = EpisodeEnd::Error { message: e.to_string() };
                History::Tokens { llm, ids: vec![], mask: vec![], logprobs: vec![], messages }
            }
        },
        Agent::Remote(p) => History::Messages { policy: *p, messages },
    };
    let prompt_tokens = match &history {
        History::Tokens { ids, .. } => ids.len(),
        History::Messages { .. } => 0,
    };
    let mut used = 0usize;

    for turn in 0..cfg.max_turns {
        if matches!(end, EpisodeEnd::Error { .. }) {
            break;
        }
        let budget =
            cfg.max_tokens_per_turn.min(cfg.max_episode_tokens.saturating_sub(used)).min(history.context_left());
        if budget == 0 {
            end = EpisodeEnd::MaxTokens;
            break;
        }
        let params = SamplingParams {
            max_tokens: budget,
            temperature: cfg.temperature,
            top_p: cfg.top_p,
            seed: seed.wrapping_add(turn as u64),
            stop: vec![CLOSE.to_string()],
            ..Default::default()
        };
        let t = Instant::now();
        let completion = match history.generate(&tools, &params) {
            Ok(c) => c,
            Err(e) => {
                end = EpisodeEnd::Error { message: e };
                break;
            }
        };
        timing.generation_ms += t.elapsed().as_secs_f64() * 1e3;
        used += completion.token_ids.len().max(completion.logprobs.len());
        let calls = parse_tool_calls(&completion.text);
        // The stop string is not in the returned text; the history shows the call closed.
        let shown = if calls.is_empty() || completion.text.trim_end().ends_with(CLOSE) {
            completion.text.clone()
        } else {
            format!("{}{CLOSE}", completion.text)
        };
        history.push_assistant(&completion, &shown);
        let mut record = Turn {
            text: completion.text.clone(),
            tool_calls: vec![],
            malformed: vec![],
            observations: vec![],
            generated_tokens: completion.token_ids.len().max(completion.logprobs.len()),
        };
        if calls.is_empty() {
            answer = final_answer(&completion.text);
            end = if answer.is_some() { EpisodeEnd::Answered } else { EpisodeEnd::NoAnswer };
            if completion.finish_reason == kaizen_core::FinishReason::Length && answer.is_none() {
                end = EpisodeEnd::MaxTokens;
            }
            turns.push(record);
            break;
        }
        let t = Instant::now();
        for call in &calls {
            let obs = registry.dispatch(call);
            match call {
                Ok(c) => record.tool_calls.push(c.clone()),
                Err(bad) => record.malformed.push(bad.message.clone()),
            }
            record.observations.push(obs);
        }
        timing.tool_ms += t.elapsed().as_secs_f64() * 1e3;
        if let Err(e) = history.push_observations(&tools, &record.observations) {
            end = EpisodeEnd::Error { message: e };
            turns.push(record);
            break;
        }
        turns.push(record);
    }

    let (token_ids, loss_mask, logprobs) = match history {
        History::Tokens { ids, mask, logprobs, .. } => (ids, mask, logprobs),
        History::Messages { .. } => (vec![], vec![], vec![]),
    };
    timing.total_ms = start.elapsed().as_secs_f64() * 1e3;
    Trajectory {
        schema_version: SCHEMA_VERSION,
        episode_id: episode_id.to_string(),
        env: env.name().to_string(),
        policy: agent.name(),
        seed,
        reward: task.reward(answer.as_deref()),
        task: task.clone(),
        turns,
        token_ids,
        loss_mask,
        logprobs,
        prompt_tokens,
        final_answer: answer,
        end,
        timing,
    }
}
