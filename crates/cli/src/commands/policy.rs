//! Options shared by the verbs that run a policy: which model, where, and how to sample.

use anyhow::Context;
use kaizen_core::{Policy, SamplingParams};
use kaizen_models::{LocalLlm, OpenAiClient, WeightFormat};
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct PolicyArgs {
    /// `smollm2` (installed), a path to a .gguf file, `openai:URL` for a remote server
    /// (`openai:URL1,URL2,…`: a pool, least-busy first, a failed server skipped and retried
    /// later), or a
    /// reference agent: for web envs `oracle` (solves every miniwob-easy task), `random` (clicks
    /// anything); for shape-grid `glance` (reads the small picture) and `zoomer` (crops the
    /// asked cell first), for shape-cell `reader`.
    #[arg(long, default_value = "smollm2")]
    pub policy: String,
    /// Model name to send to a remote server.
    #[arg(long, default_value = "default")]
    pub remote_model: String,
    /// In-memory weight format for local models: q8_0 (fast), native (as in the file), f32.
    #[arg(long, default_value = "q8_0")]
    pub weights: WeightFormat,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Continuations of the prompt (they share one prefill).
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Stop string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

impl SamplingArgs {
    pub fn params(&self, top_logprobs: usize) -> SamplingParams {
        SamplingParams {
            n: self.n,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed,
            stop: self.stop.clone(),
            top_logprobs,
        }
    }
}

pub enum Backend {
    Local(LocalLlm),
    /// Runs turn by turn over messages: a remote server, or a reference agent.
    Remote(Box<dyn Policy>),
}

impl Backend {
    pub fn open(args: &PolicyArgs) -> anyhow::Result<Self> {
        if let Some(urls) = args.policy.strip_prefix("openai:") {
            let urls: Vec<&str> = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
            return Ok(Backend::Remote(match urls.as_slice() {
                [one] => Box::new(OpenAiClient::new(one, &args.remote_model)?),
                many => Box::new(kaizen_models::ServerPool::new(many, &args.remote_model)?),
            }));
        }
        match args.policy.as_str() {
            "oracle" => return Ok(Backend::Remote(Box::new(kaizen_envs::miniwob::agents::Oracle))),
            "random" => return Ok(Backend::Remote(Box::new(kaizen_envs::miniwob::agents::RandomClicker))),
            "glance" => return Ok(Backend::Remote(Box::new(kaizen_envs::shape_grid::agents::Glance))),
            "reader" => return Ok(Backend::Remote(Box::new(kaizen_envs::shape_grid::agents::Reader))),
            "zoomer" => return Ok(Backend::Remote(Box::new(kaizen_envs::shape_grid::agents::Zoomer))),
            _ => {}
        }
        let path = PathBuf::from(&args.policy);
        let llm = if path.extension().is_some_and(|e| e == "gguf") || path.is_file() {
            LocalLlm::load(&path, args.weights).with_context(|| format!("loading {}", path.display()))?
        } else {
            LocalLlm::load_installed(&args.policy, args.weights)?
        };
        Ok(Backend::Local(llm))
    }

    /// The backend as a shared chat policy (a local model then runs message by message, not
    /// in the batched engine): for roles played beside the policy being trained.
    pub fn into_policy(self) -> std::sync::Arc<dyn Policy> {
        match self {
            Backend::Local(l) => std::sync::Arc::new(l),
            Backend::Remote(r) => std::sync::Arc::from(r),
        }
    }

    pub fn policy(&self) -> &dyn Policy {
        match self {
            Backend::Local(l) => l,
            Backend::Remote(r) => r.as_ref(),
        }
    }

    /// What runs episodes: a local model on its own tokens, anything else over messages.
    pub fn agent(&self) -> kaizen_rollout::Agent<'_> {
        match self {
            Backend::Local(l) => kaizen_rollout::Agent::Local(l),
            Backend::Remote(r) => kaizen_rollout::Agent::Remote(r.as_ref()),
        }
    }
}

/// Reads a text file, with a clear error for invalid UTF-8.
pub fn read_text(path: &std::path::Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not valid UTF-8 (first bad byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// How each task is prompted, as every verb that runs episodes takes it.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PromptArgs {
    /// Worked examples (the env's demonstrations of other tasks, tools really run) shown before
    /// each task: few-shot prompting, for small models that do not know the tool-call format.
    /// Use the same number when collecting Q data and evaluating, so the Q-function sees the
    /// policy it was trained on.
    #[arg(long, default_value_t = 0)]
    pub shots: usize,
    /// Take the worked examples from this env instead (e.g. `arith` for a task file without
    /// demonstrations of its own).
    #[arg(long, value_name = "ENV")]
    pub shots_from: Option<String>,
    /// Leave the tools' JSON schemas out of the prompt (the tools still run): how a policy
    /// trained with `tool_schemas = false` in its recipe was prompted.
    #[arg(long)]
    pub no_tool_schemas: bool,
}

impl PromptArgs {
    /// The worked examples these settings ask for, from `env` (or `--shots-from`).
    pub fn shots(
        &self,
        env: &dyn kaizen_core::Env,
        tools: &kaizen_tools::ToolRegistry,
    ) -> anyhow::Result<Vec<kaizen_core::Message>> {
        Ok(kaizen_rl::setup::worked_examples(env, self.shots_from.as_deref(), &kaizen_envs::open, tools, self.shots)?)
    }
}
