//! How long an episode may run and how it samples: the settings every verb that runs episodes
//! takes (`kaizen run`, `collect`, `eval-rerank` flatten `EpisodeArgs`), and that a recipe's
//! `[rl]` section gives its rollouts (`RlSection::episode`). One set of defaults, here; one
//! derivation of the episode's token budget.

use crate::episode::EpisodeConfig;
use kaizen_core::Message;
use serde::{Deserialize, Serialize};

/// The defaults of every verb: four turns of up to 256 tokens, greedy. A verb that samples
/// on purpose (`collect`, `eval-rerank`: temperature 1.0) says so in its `--help`; a recipe's
/// `[rl]` section has its own (`RlSection::default`), since RL must sample.
pub const DEFAULT_MAX_TURNS: usize = 4;
pub const DEFAULT_MAX_TOKENS_PER_TURN: usize = 256;
pub const DEFAULT_TEMPERATURE: f32 = 0.0;

#[derive(clap::Args, Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EpisodeArgs {
    /// Model turns an episode may take (each followed by the observations of its tool calls).
    #[arg(long, default_value_t = DEFAULT_MAX_TURNS)]
    pub max_turns: usize,
    /// Tokens one turn may write.
    #[arg(long, default_value_t = DEFAULT_MAX_TOKENS_PER_TURN)]
    pub max_tokens_per_turn: usize,
    /// Tokens the whole episode may write [default: max-turns × max-tokens-per-turn].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_episode_tokens: Option<usize>,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = DEFAULT_TEMPERATURE)]
    pub temperature: f32,
}

impl Default for EpisodeArgs {
    fn default() -> Self {
        EpisodeArgs {
            max_turns: DEFAULT_MAX_TURNS,
            max_tokens_per_turn: DEFAULT_MAX_TOKENS_PER_TURN,
            max_episode_tokens: None,
            temperature: DEFAULT_TEMPERATURE,
        }
    }
}

impl EpisodeArgs {
    /// The episode's token budget: as given, else `max_turns × max_tokens_per_turn`.
    pub fn max_episode_tokens(&self) -> usize {
        self.max_episode_tokens.unwrap_or(self.max_turns * self.max_tokens_per_turn)
    }

    /// The episode engine's settings: these limits and temperature, with `shots` worked examples
    /// before every task, the tools' schemas shown or not, and screenshots shown or not.
    pub fn config(&self, shots: Vec<Message>, tool_schemas: bool, screenshots: bool) -> EpisodeConfig {
        EpisodeConfig {
            max_turns: self.max_turns,
            max_tokens_per_turn: self.max_tokens_per_turn,
            max_episode_tokens: self.max_episode_tokens(),
            temperature: self.temperature,
            shots,
            screenshots,
            tool_schemas,
            top_p: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_budget_is_derived_once() {
        let a = EpisodeArgs { max_turns: 3, max_tokens_per_turn: 96, ..Default::default() };
        assert_eq!(a.max_episode_tokens(), 288);
        let c = a.config(Vec::new(), false, true);
        assert_eq!((c.max_turns, c.max_tokens_per_turn, c.max_episode_tokens, c.temperature), (3, 96, 288, 0.0));
        assert!(!c.tool_schemas && c.screenshots);
        let b = EpisodeArgs { max_episode_tokens: Some(100), ..a };
        assert_eq!(b.config(Vec::new(), true, false).max_episode_tokens, 100);
        let d = EpisodeArgs::default();
        assert_eq!((d.max_turns, d.max_tokens_per_turn, d.max_episode_tokens(), d.temperature), (4, 256, 1024, 0.0));
    }
}
