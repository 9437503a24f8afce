//! One episode as a state machine: the policy writes, calls tools, reads observations,
//! answers. Drivers feed it: `run_episode` turn by turn (a remote policy, or a local model
//! through a one-slot batch), `engine::run_local` many at once on one local model.
//!
//! With a local model the episode is token-exact: the prompt is tokenised once, generated ids
//! are appended as produced, and each observation is appended as the tokens of the chat
//! template's text between the assistant turn and the next assistant header — the history is
//! never re-tokenised. With a remote policy the episode runs on messages (no ids).

use kaizen_core::tool_call::{parse_tool_calls, shown_text, MalformedCall, CLOSE};
use kaizen_core::trajectory::{EpisodeEnd, Timing, Trajectory, Turn, SCHEMA_VERSION};
use kaizen_core::{
    final_answer, ChatRequest, Checker, Completion, Env, EnvSession, FinishReason, Message, Observation, Policy, Role,
    SamplingParams, SessionStatus, Task, ToolCall, ToolSpec,
};
use kaizen_models::LocalLlm;
use kaizen_tools::ToolRegistry;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// An env session shared between the episode and the worker thread running its actions.
type SharedSession = Arc<Mutex<Box<dyn EnvSession>>>;

/// Where an episode's tool calls go: its env session's actions when it has one (a web page),
/// else the tool registry. Cheap to clone onto a worker thread.
#[derive(Clone)]
pub struct Toolbox<'r> {
    registry: &'r ToolRegistry,
    session: Option<SharedSession>,
    /// Attach the session's screenshot to each observation (vision policies).
    screenshots: bool,
}

impl Toolbox<'_> {
    /// Runs a turn's tool calls in order; returns one observation per call and the time taken.
    /// A tool that panics gives an error observation for its call (the episode and the engine
    /// waiting on it go on), never a lost result.
    pub fn run(&self, calls: &[Result<ToolCall, MalformedCall>]) -> (Vec<Observation>, f64) {
        let t = Instant::now();
        let obs = calls
            .iter()
            .map(|c| {
                let one = std::panic::AssertUnwindSafe(|| self.run_one(c));
                std::panic::catch_unwind(one).unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "no message".into());
                    Observation::error(format!("the tool failed inside kaizen (it panicked: {what})"))
                })
            })
            .collect();
        (obs, t.elapsed().as_secs_f64() * 1e3)
    }

    fn run_one(&self, c: &Result<ToolCall, MalformedCall>) -> Observation {
        match (c, &self.session) {
            (Ok(call), Some(s)) => {
                let mut session = s.lock().unwrap_or_else(|p| p.into_inner());
                let mut obs = session.act(call);
                if self.screenshots {
                    attach_screenshot(session.as_mut(), &mut obs.images, &mut obs.content);
                }
                obs
            }
            _ => self.registry.dispatch(c),
        }
    }
}

/// Adds the session's screenshot to `images`; a failed screenshot is said in `text` instead
/// (the episode goes on: the page is still shown as text).
fn attach_screenshot(session: &mut dyn EnvSession, images: &mut Vec<String>, text: &mut String) {
    match session.screenshot() {
        Some(Ok(url)) => images.push(url),
        Some(Err(e)) => text.push_str(&format!("\n(no screenshot: {e})")),
        None => {}
    }
}

#[derive(Debug, Clone)]
pub struct EpisodeConfig {
    pub max_turns: usize,
    pub max_tokens_per_turn: usize,
    pub max_episode_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// Worked examples shown between the system turn and the task (few-shot prompting; see
    /// `few_shot`). Empty: the task alone.
    pub shots: Vec<Message>,
    /// Show the env's screenshots (web pages) with the task and every observation, for vision
    /// policies. Text-only models read the text alone.
    pub screenshots: bool,
    /// Show the tools' JSON schemas in the system turn (the tools run either way). Off for a
    /// policy trained from scratch, which cannot read them: arith's prompt shrinks from ~1,330
    /// byte tokens to ~230, and with it the keys every written token attends over.
    pub tool_schemas: bool,
}

impl Default for EpisodeConfig {
    /// `EpisodeArgs`' defaults (four turns of 256 tokens, greedy), no worked examples, tool
    /// schemas shown, no screenshots.
    fn default() -> Self {
        crate::episode_args::EpisodeArgs::default().config(Vec::new(), true, false)
    }
}

/// The task stream the worked examples come from: fixed, so every run of an env shows the same
/// examples (a Q-function trained on one run reads the same prompts as the runs it reranks),
/// and far from the seeds runs use.
pub const SHOT_SEED: u64 = 0x5EED_0F5E_ED5A_u64;

/// The registry's tools that `env` allows.
fn env_tools(env: &dyn Env, registry: &ToolRegistry) -> Vec<ToolSpec> {
    let allowed = env.tool_names();
    registry.specs().into_iter().filter(|s| s.name().is_some_and(|n| allowed.iter().any(|a| a == n))).collect()
}

/// An episode's first messages: the env's system turn, the worked examples, the task.
fn opening(env: &dyn Env, cfg: &EpisodeConfig, task_turn: Message) -> Vec<Message> {
    let mut messages = vec![Message::system(env.system_prompt())];
    messages.extend(cfg.shots.iter().cloned());
    messages.push(task_turn);
    messages
}

/// Refuses, before any episode runs, a task whose opening prompt (system turn, worked examples,
/// tool schemas, task) leaves no room in `llm`'s context window — it would otherwise end as a
/// failed episode, silently. The error names the first such task. Envs with sessions write
/// their prompt when the episode opens (a web page), so there is nothing to check up front.
pub fn check_prompts_fit(
    llm: &LocalLlm,
    env: &dyn Env,
    registry: &ToolRegistry,
    tasks: &[Task],
    cfg: &EpisodeConfig,
) -> Result<(), String> {
    if env.has_sessions() {
        return Ok(());
    }
    let tools = if cfg.tool_schemas { env_tools(env, registry) } else { Vec::new() };
    for task in tasks {
        let messages = opening(env, cfg, Message { images: task.images.clone(), ..Message::user(task.prompt.clone()) });
        let n = llm.encode_chat(&messages, &tools).map_err(|e| format!("task {}: {e}", task.id))?.len();
        if n >= llm.context_len() {
            return Err(format!(
                "task {}: its opening prompt is {n} tokens and the model's context window is {}; shorten the \
                 task{}",
                task.id,
                llm.context_len(),
                if cfg.shots.is_empty() { "" } else { " or use fewer --shots" }
            ));
        }
    }
    Ok(())
}

/// `k` worked examples of `env` as chat turns — each a task, its solution with every tool
/// call really run and its result shown as a tool turn, and the final answer — to put before
/// an episode's task (`EpisodeConfig::shots`). A solution is the env's demonstration, or else
/// an episode of its reference agent (a web page needs a live session); only solved examples
/// are shown (tasks the agent fails are passed over, up to `4k` tried). Errors when the env
/// has neither, or fewer than `k` examples were solved.
pub fn few_shot(env: &dyn Env, registry: &ToolRegistry, k: usize) -> Result<Vec<Message>, String> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let agent = env.reference_agent();
    let mut shots = Vec::new();
    let mut solved = 0;
    for (i, task) in env.tasks(SHOT_SEED, 4 * k).into_iter().enumerate() {
        if solved == k {
            break;
        }
        if let Some(turns) = env.demonstration(&task) {
            shots.push(Message { images: task.images.clone(), ..Message::user(task.prompt.clone()) });
            for text in &turns {
                let calls = parse_tool_calls(text);
                shots.push(Message::assistant(shown_text(text, !calls.is_empty())));
                shots.extend(calls.iter().map(|c| Message::new(Role::Tool, registry.dispatch(c).content)));
            }
        } else if let Some(agent) = &agent {
            let agent = Agent::Remote(agent.as_ref());
            let cfg = EpisodeConfig::default();
            let t = run_episode(&agent, env, registry, &task, &cfg, SHOT_SEED.wrapping_add(i as u64), "example");
            if !t.solved() {
                continue;
            }
            shots.push(Message { images: t.task.images.clone(), ..Message::user(t.task.prompt.clone()) });
            shots.extend(t.turns.iter().flat_map(|turn| turn.messages()));
        } else {
            return Err(format!("env {} has no demonstrations to show as examples (use --shots 0)", env.name()));
        }
        solved += 1;
    }
    if solved < k {
        return Err(format!("only {solved} of {} tasks of {} tried were solved for {k} examples", 4 * k, env.name()));
    }
    Ok(shots)
}

/// Who writes the assistant turns.
#[derive(Clone, Copy)]
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

/// What to run: a task, the episode's seed, its id in the run, and optionally a prefix of an
/// earlier episode to start from.
#[derive(Debug, Clone)]
pub struct Job {
    pub task: Task,
    pub seed: u64,
    pub id: String,
    pub prefix: Option<Arc<Prefix>>,
}

impl Job {
    pub fn new(task: Task, seed: u64, id: impl Into<String>) -> Self {
        Job { task, seed, id: id.into(), prefix: None }
    }

    /// A fresh continuation of `source`'s first `end` tokens (AXPO's resampling): the turns
    /// before are replayed as they were (their recorded observations, no tools re-run), the
    /// turn that `end` falls in is continued by the policy from there.
    pub fn continuing(source: Arc<Trajectory>, end: usize, seed: u64, id: impl Into<String>) -> Self {
        Job {
            task: source.task.clone(),
            seed,
            id: id.into(),
            prefix: Some(Arc::new(Prefix { source, end, note: None })),
        }
    }

    /// A repair (Agent0-VL): `source`'s turns before the one that starts at token `end` are
    /// replayed as they were, then that turn opens with `note` — shown to the policy, not
    /// written by it (loss mask 0) — and the policy re-derives the step from there.
    pub fn repairing(source: Arc<Trajectory>, end: usize, note: String, seed: u64, id: impl Into<String>) -> Self {
        let prefix = Prefix { source, end, note: Some(note) };
        Job { task: prefix.source.task.clone(), seed, id: id.into(), prefix: Some(Arc::new(prefix)) }
    }
}

/// Where a resampled episode starts: the first `end` tokens of `source`.
#[derive(Debug, Clone)]
pub struct Prefix {
    pub source: Arc<Trajectory>,
    pub end: usize,
    /// Text that opens the continued turn without being the policy's own (a repair's
    /// correction): its tokens are in the record with loss mask 0. Only where a turn begins.
    pub note: Option<String>,
}

/// The running conversation: token-exact with a local model, messages with a remote one.
enum History<'a> {
    /// `pictures`: what the placeholder runs in `ids` show, in order (a vision model).
    Tokens {
        llm: &'a LocalLlm,
        ids: Vec<u32>,
        mask: Vec<u8>,
        logprobs: Vec<f32>,
        pictures: Vec<String>,
    },
    Messages,
}

/// Marks where the assistant's text sits in a rendered template.
const SENTINEL: &str = "\u{E000}kaizen-assistant-turn\u{E001}";

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

/// An episode in progress. Never fails: a backend error ends it as `Error`, recorded.
pub struct Episode<'a> {
    env: String,
    policy: String,
    job: Job,
    cfg: EpisodeConfig,
    tools: Vec<ToolSpec>,
    messages: Vec<Message>,
    history: History<'a>,
    prompt_tokens: usize,
    /// Leading prompt tokens every episode of the env shares (system turn, tools, worked
    /// examples): fed as a chunk of their own, so the prefix cache can hold them.
    shared_prefix: usize,
    turns: Vec<Turn>,
    end: Option<EpisodeEnd>,
    answer: Option<String>,
    used: usize,
    timing: Timing,
    start: Instant,
    session: Option<SharedSession>,
    /// Text of the current turn that was forced from a prefix (the policy continues it).
    forced: Option<(String, usize)>,
}

impl<'a> Episode<'a> {
    pub fn new(agent: &Agent<'a>, env: &dyn Env, registry: &ToolRegistry, mut job: Job, cfg: &EpisodeConfig) -> Self {
        let mut tools = env_tools(env, registry);
        let mut end = None;
        // The task's own pictures open the chat with its text (a vision question).
        let mut task_turn = Message { images: job.task.images.clone(), ..Message::user(String::new()) };
        // A stateful env writes the prompt and brings its own actions.
        let session = match env.open_session(&job.task) {
            None => None,
            Some(Ok(mut s)) => {
                job.task.prompt = s.prompt();
                tools = s.tools();
                if cfg.screenshots {
                    attach_screenshot(s.as_mut(), &mut task_turn.images, &mut job.task.prompt);
                    // The record's task is what the policy was shown (as its prompt already
                    // is): Q training then reads the state the scorer read.
                    job.task.images = task_turn.images.clone();
                }
                Some(Arc::new(Mutex::new(s)))
            }
            Some(Err(message)) => {
                end = Some(EpisodeEnd::Error { message });
                None
            }
        };
        if !cfg.tool_schemas {
            tools.clear();
        }
        task_turn.content = job.task.prompt.clone();
        let messages = opening(env, cfg, task_turn);
        let history = match agent {
            Agent::Local(llm) => {
                let ids = llm.encode_chat(&messages, &tools).unwrap_or_else(|e| {
                    end = Some(EpisodeEnd::Error { message: e.to_string() });
                    Vec::new()
                });
                let n = ids.len();
                let pictures = LocalLlm::vision_pictures(&messages);
                History::Tokens { llm, ids, mask: vec![0; n], logprobs: vec![0.0; n], pictures }
            }
            Agent::Remote(_) => History::Messages,
        };
        let prompt_tokens = match &history {
            History::Tokens { ids, .. } => ids.len(),
            History::Messages => 0,
        };
        let shared_prefix = match &history {
            History::Tokens { llm, ids, .. } if end.is_none() => {
                llm.shared_prefix_len(&messages[..messages.len() - 1], &tools, ids)
            }
            _ => 0,
        };
        let mut ep = Episode {
            env: env.name().to_string(),
            policy: agent.name(),
            job,
            cfg: cfg.clone(),
            tools,
            messages,
            history,
            prompt_tokens,
            shared_prefix,
            turns: Vec::new(),
            end,
            answer: None,
            used: 0,
            timing: Timing::default(),
            start: Instant::now(),
            session,
            forced: None,
        };
        if let Some(prefix) = ep.job.prefix.clone() {
            if let Err(e) = ep.replay(&prefix) {
                ep.end = Some(EpisodeEnd::Error { message: format!("replaying the prefix: {e}") });
            }
        }
        ep
    }

    /// Brings the episode to `prefix`: whole turns of the source are fed back with their
    /// recorded observations; the rest of the prefix becomes the forced start of the next turn.
    fn replay(&mut self, prefix: &Prefix) -> Result<(), String> {
        let src = &prefix.source;
        let (ids, mask, lps) = (&src.token_ids, &src.loss_mask, &src.logprobs);
        if prefix.end > ids.len() || mask.len() != ids.len() || lps.len() != ids.len() {
            return Err("the source trajectory has no token record for this prefix".into());
        }
        let History::Tokens { llm, ids: own, .. } = &self.history else {
            return Err("prefixes need a local model".into());
        };
        let llm = *llm;
        if own.as_slice() != &ids[..src.prompt_tokens.min(ids.len())] {
            return Err("the source's prompt differs from this episode's".into());
        }
        self.check_source_pictures(src)?;
        // Turns are the runs of model-written tokens after the prompt.
        let mut at = src.prompt_tokens;
        for turn in &src.turns {
            let a = (at..ids.len()).find(|&i| mask[i] == 1).unwrap_or(ids.len());
            let b = (a..ids.len()).find(|&i| mask[i] == 0).unwrap_or(ids.len());
            // Tokens shown but not written before the turn's own: the note that opened a
            // repaired turn (its text starts with it). They go back in as they were.
            let mut opening = String::new();
            if a > at && prefix.end > at {
                if prefix.end < a {
                    return Err("the prefix ends inside a note".into());
                }
                if let History::Tokens { ids: own, mask: m, logprobs, .. } = &mut self.history {
                    own.extend(&ids[at..a]);
                    m.extend(std::iter::repeat_n(0u8, a - at));
                    logprobs.extend(std::iter::repeat_n(0.0f32, a - at));
                }
                opening = llm.tokenizer.decode(&ids[at..a]);
            }
            if prefix.end < b {
                let forced = &ids[a.min(prefix.end)..prefix.end];
                if !forced.is_empty() {
                    if let History::Tokens { ids: own, mask: m, logprobs, .. } = &mut self.history {
                        own.extend(forced);
                        m.extend(std::iter::repeat_n(1u8, forced.len()));
                        logprobs.extend(&lps[a..prefix.end]);
                    }
                    self.used += forced.len();
                }
                // The continued turn's text so far: its note, then what it had written.
                if !forced.is_empty() || !opening.is_empty() {
                    self.forced = Some((format!("{opening}{}", llm.tokenizer.decode(forced)), forced.len()));
                }
                if let Some(note) = &prefix.note {
                    if prefix.end != a {
                        return Err("a note opens a turn: the prefix must end where a turn begins".into());
                    }
                    let shown = llm.tokenizer.encode(note).map_err(|e| e.to_string())?;
                    if let History::Tokens { ids: own, mask: m, logprobs, .. } = &mut self.history {
                        own.extend(&shown);
                        m.extend(std::iter::repeat_n(0u8, shown.len()));
                        logprobs.extend(std::iter::repeat_n(0.0f32, shown.len()));
                    }
                    // The turn's text starts with the note; it wrote none of its tokens.
                    self.forced = Some((format!("{opening}{note}"), 0));
                }
                return Ok(());
            }
            let logprobs = (a..b)
                .map(|i| kaizen_core::TokenLogprob {
                    token_id: Some(ids[i]),
                    token: llm.tokenizer.token_text(ids[i]),
                    logprob: lps[i],
                    entropy: None,
                    top: vec![],
                })
                .collect();
            let c = Completion {
                text: turn.text.clone(),
                token_ids: ids[a..b].to_vec(),
                logprobs,
                finish_reason: FinishReason::Stop,
                prompt_tokens: a,
            };
            let calls = self.on_completion(c, 0.0);
            // A replayed turn is the source's: its sampling entropy too (the tokens were not
            // drawn here, so the replay cannot measure one).
            if let Some(t) = self.turns.last_mut() {
                t.entropy = turn.entropy;
            }
            if calls.is_empty() {
                return Err("the prefix runs past the source's last turn".into());
            }
            self.on_observations(turn.observations.clone(), 0.0);
            self.check_source_pictures(src)?;
            at = self.token_ids().len();
            if self.token_ids() != &ids[..at.min(ids.len())] {
                return Err("replayed observations tokenise differently from the source".into());
            }
        }
        Err("the prefix runs past the source's turns".into())
    }

    /// Refuses to go on from a source that showed other pictures than this episode has so far
    /// (a fresh screenshot of a web page, a changed file): the source's log-probs would belong
    /// to other pictures.
    fn check_source_pictures(&self, src: &Trajectory) -> Result<(), String> {
        let own = self.pictures();
        let same = own.len() <= src.token_pictures.len()
            && own
                .iter()
                .zip(&src.token_pictures)
                .all(|(a, b)| a == b || kaizen_core::image::content_hash(a) == kaizen_core::image::content_hash(b));
        if same {
            Ok(())
        } else {
            Err("the source showed other pictures than this episode (a fresh screenshot?)".into())
        }
    }

    /// Where this episode's tool calls go.
    pub fn toolbox<'r>(&self, registry: &'r ToolRegistry) -> Toolbox<'r> {
        Toolbox { registry, session: self.session.clone(), screenshots: self.cfg.screenshots }
    }

    fn session_status(&self) -> Option<SessionStatus> {
        self.session.as_ref().map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).status())
    }

    /// Sampling parameters of the next assistant turn, or `None` when the episode is over.
    pub fn next_turn(&mut self) -> Option<SamplingParams> {
        if self.end.is_some() {
            return None;
        }
        if self.turns.len() >= self.cfg.max_turns {
            self.end = Some(EpisodeEnd::MaxTurns);
            return None;
        }
        let context_left = match &self.history {
            History::Tokens { llm, ids, .. } => llm.context_len().saturating_sub(ids.len() + 1),
            History::Messages => usize::MAX,
        };
        let budget =
            self.cfg.max_tokens_per_turn.min(self.cfg.max_episode_tokens.saturating_sub(self.used)).min(context_left);
        if budget == 0 {
            self.end = Some(EpisodeEnd::MaxTokens);
            return None;
        }
        Some(SamplingParams {
            max_tokens: budget,
            temperature: self.cfg.temperature,
            top_p: self.cfg.top_p,
            seed: self.job.seed.wrapping_add(self.turns.len() as u64),
            stop: vec![CLOSE.to_string()],
            ..Default::default()
        })
    }

    /// The loss mask so far of an episode continued from a recorded prefix (AXPO, a repair):
    /// which of its tokens were written — the schedule its history is fed on. `None` for an
    /// episode that began afresh.
    pub fn replayed_mask(&self) -> Option<&[u8]> {
        match (&self.job.prefix, &self.history) {
            (Some(_), History::Tokens { mask, .. }) => Some(mask),
            _ => None,
        }
    }

    /// Leading prompt tokens shared with other episodes (see the field).
    pub fn shared_prefix(&self) -> usize {
        self.shared_prefix
    }

    /// Every token so far (local models): the prompt of the next turn.
    pub fn token_ids(&self) -> &[u32] {
        match &self.history {
            History::Tokens { ids, .. } => ids,
            History::Messages => &[],
        }
    }

    /// What the placeholder runs of `token_ids` show, in order (a local vision model).
    pub fn pictures(&self) -> &[String] {
        match &self.history {
            History::Tokens { pictures, .. } => pictures,
            History::Messages => &[],
        }
    }

    /// The chat so far (remote policies), as a request.
    pub fn request(&self, params: SamplingParams) -> ChatRequest {
        ChatRequest { messages: self.messages.clone(), tools: self.tools.clone(), params }
    }

    /// Records the assistant's turn. Returns its tool calls (parsed or malformed) for the
    /// driver to run; none means the episode is over.
    pub fn on_completion(&mut self, c: Completion, generation_ms: f64) -> Vec<Result<ToolCall, MalformedCall>> {
        self.timing.generation_ms += generation_ms;
        let mut written = c.token_ids.len().max(c.logprobs.len());
        self.used += written;
        // A turn continued from a forced prefix is the prefix's text and the new text.
        let mut c = c;
        if let Some((text, n)) = self.forced.take() {
            c.text = format!("{text}{}", c.text);
            written += n;
        }
        let calls = parse_tool_calls(&c.text);
        let shown = shown_text(&c.text, !calls.is_empty());
        if let History::Tokens { ids, mask, logprobs, .. } = &mut self.history {
            ids.extend(&c.token_ids);
            mask.extend(std::iter::repeat_n(1u8, c.token_ids.len()));
            logprobs.extend(c.logprobs.iter().map(|t| t.logprob));
        }
        self.messages.push(Message::assistant(shown));
        let entropies: Vec<f32> = c.logprobs.iter().filter_map(|t| t.entropy).collect();
        let mut turn = Turn {
            text: c.text.clone(),
            tool_calls: vec![],
            malformed: vec![],
            observations: vec![],
            generated_tokens: written,
            candidates: vec![],
            entropy: (!entropies.is_empty()).then(|| entropies.iter().sum::<f32>() / entropies.len() as f32),
            verdict: None,
        };
        for call in &calls {
            match call {
                Ok(call) => turn.tool_calls.push(call.clone()),
                Err(bad) => turn.malformed.push(bad.message.clone()),
            }
        }
        self.turns.push(turn);
        if calls.is_empty() {
            self.answer = final_answer(&c.text);
            self.end = Some(match (&self.answer, c.finish_reason) {
                (Some(_), _) => EpisodeEnd::Answered,
                (None, FinishReason::Length) => EpisodeEnd::MaxTokens,
                (None, _) => EpisodeEnd::NoAnswer,
            });
        }
        calls
    }

    /// Appends the observations of the last turn's tool calls (one per call, in order).
    pub fn on_observations(&mut self, obs: Vec<Observation>, tool_ms: f64) {
        self.timing.tool_ms += tool_ms;
        let tool_msgs: Vec<Message> = obs.iter().map(Message::observation).collect();
        if let History::Tokens { llm, ids, mask, logprobs, pictures } = &mut self.history {
            let segment = observation_segment(llm, &self.messages, &self.tools, &tool_msgs)
                .and_then(|text| llm.tokenizer.encode(&text).map_err(|e| e.to_string()));
            match segment {
                Ok(seg) => {
                    pictures.extend(LocalLlm::vision_pictures(&tool_msgs));
                    ids.extend(&seg);
                    mask.extend(std::iter::repeat_n(0u8, seg.len()));
                    logprobs.extend(std::iter::repeat_n(0.0f32, seg.len()));
                }
                Err(e) => self.end = Some(EpisodeEnd::Error { message: e }),
            }
        }
        self.messages.extend(tool_msgs);
        if let Some(turn) = self.turns.last_mut() {
            turn.observations = obs;
        }
        match self.session_status() {
            Some(SessionStatus::Ended { .. }) => self.end = self.end.take().or(Some(EpisodeEnd::EnvDone)),
            Some(SessionStatus::Failed { message }) => self.end = Some(EpisodeEnd::Error { message }),
            _ => {}
        }
    }

    /// The chat so far (system, task, then the assistant turns and observations).
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Attaches the step's candidate set to the turn just recorded.
    pub fn record_candidates(&mut self, candidates: Vec<kaizen_core::trajectory::Candidate>) {
        if let Some(turn) = self.turns.last_mut() {
            turn.candidates = candidates;
        }
    }

    /// Ends the episode as failed (the backend could not produce a turn).
    pub fn fail(&mut self, message: String) {
        self.end = Some(EpisodeEnd::Error { message });
    }

    pub fn id(&self) -> &str {
        &self.job.id
    }

    pub fn finish(mut self) -> Trajectory {
        let end = self.end.take().unwrap_or(EpisodeEnd::MaxTurns);
        // A stateful env scores the episode itself; otherwise the task's checker reads the answer.
        let reward = match (&self.session, self.session_status()) {
            // A session that scores its own episodes (a web page) says what stopping early earns;
            // one that only lends tools (a picture's crop and zoom) leaves the answer to the checker.
            (Some(s), Some(SessionStatus::Running)) if self.job.task.checker == Checker::Env => {
                s.lock().unwrap_or_else(|p| p.into_inner()).unfinished_reward()
            }
            (_, Some(SessionStatus::Ended { reward })) => reward,
            (_, Some(SessionStatus::Failed { .. })) => 0.0,
            _ => self.job.task.reward(self.answer.as_deref()),
        };
        let (token_ids, loss_mask, logprobs, token_pictures) = match self.history {
            History::Tokens { ids, mask, logprobs, pictures, .. } => (ids, mask, logprobs, pictures),
            History::Messages => (vec![], vec![], vec![], vec![]),
        };
        self.timing.total_ms = self.start.elapsed().as_secs_f64() * 1e3;
        Trajectory {
            schema_version: SCHEMA_VERSION,
            episode_id: self.job.id,
            env: self.env,
            policy: self.policy,
            seed: self.job.seed,
            reward,
            task: self.job.task,
            turns: self.turns,
            token_ids,
            loss_mask,
            logprobs,
            prompt_tokens: self.prompt_tokens,
            shared_prefix_tokens: self.shared_prefix,
            token_pictures,
            final_answer: self.answer,
            end,
            timing: self.timing,
            reward_detail: serde_json::Value::Null,
        }
    }
}

/// A scripted episode: `turns` are the assistant's texts in order (a turn that calls a tool
/// ends with the closing tag), the tools really run, and the trajectory is token-exact as if
/// `llm` had written the turns — a demonstration for supervised fine-tuning. A final turn
/// (no tool call) ends with the end-of-turn token, as a sampled one does.
pub fn demonstration(
    llm: &LocalLlm,
    env: &dyn Env,
    registry: &ToolRegistry,
    job: Job,
    turns: &[String],
    cfg: &EpisodeConfig,
) -> Trajectory {
    let mut ep = Episode::new(&Agent::Local(llm), env, registry, job, cfg);
    for text in turns {
        if ep.next_turn().is_none() {
            break;
        }
        let mut ids = match llm.tokenizer.encode(text) {
            Ok(ids) => ids,
            Err(e) => {
                ep.fail(e.to_string());
                break;
            }
        };
        let calls = parse_tool_calls(text);
        // Generation stops at the closing tag, which is then not in the completion's text.
        let shown = if calls.is_empty() {
            ids.push(llm.tokenizer.eos_id);
            text.clone()
        } else {
            text.trim_end().strip_suffix(CLOSE).unwrap_or(text).to_string()
        };
        let logprobs = ids
            .iter()
            .map(|&id| kaizen_core::TokenLogprob {
                token_id: Some(id),
                token: llm.tokenizer.token_text(id),
                logprob: 0.0,
                entropy: None,
                top: vec![],
            })
            .collect();
        let prompt_tokens = ep.token_ids().len();
        let c = Completion { text: shown, token_ids: ids, logprobs, finish_reason: FinishReason::Stop, prompt_tokens };
        let calls = ep.on_completion(c, 0.0);
        if !calls.is_empty() {
            let (obs, ms) = ep.toolbox(registry).run(&calls);
            ep.on_observations(obs, ms);
        }
    }
    ep.finish()
}

/// Runs one episode of `task` to the end. A local model goes through the same batched engine
/// as concurrent episodes (one slot), so one episode and many are sampled alike.
pub fn run_episode(
    agent: &Agent,
    env: &dyn Env,
    registry: &ToolRegistry,
    task: &Task,
    cfg: &EpisodeConfig,
    seed: u64,
    episode_id: &str,
) -> Trajectory {
    let job = Job::new(task.clone(), seed, episode_id);
    match agent {
        Agent::Local(llm) => {
            let mut out = None;
            crate::engine::run_local(llm, env, registry, [job.clone()], cfg, 1, &mut |t| out = Some(t));
            out.unwrap_or_else(|| {
                let mut ep = Episode::new(agent, env, registry, job, cfg);
                ep.fail("the engine ended without finishing the episode".into());
                ep.finish()
            })
        }
        Agent::Remote(policy) => run_remote(*policy, agent, env, registry, job, cfg),
    }
}

/// A remote policy, turn by turn: each turn is one chat request with the whole conversation.
fn run_remote(
    policy: &dyn Policy,
    agent: &Agent,
    env: &dyn Env,
    registry: &ToolRegistry,
    job: Job,
    cfg: &EpisodeConfig,
) -> Trajectory {
    let mut ep = Episode::new(agent, env, registry, job, cfg);
    while let Some(params) = ep.next_turn() {
        let t = Instant::now();
        let completion = policy.chat(&ep.request(params)).map_err(|e| e.to_string()).and_then(|mut c| {
            if c.is_empty() {
                Err("the policy returned no completion".into())
            } else {
                Ok(c.remove(0))
            }
        });
        match completion {
            Ok(c) => {
                let calls = ep.on_completion(c, t.elapsed().as_secs_f64() * 1e3);
                if !calls.is_empty() {
                    let (obs, ms) = ep.toolbox(registry).run(&calls);
                    ep.on_observations(obs, ms);
                }
            }
            Err(e) => ep.fail(e),
        }
    }
    ep.finish()
}

#[cfg(test)]
#[path = "episode_tests.rs"]
mod tests;
