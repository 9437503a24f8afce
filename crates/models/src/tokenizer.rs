//! The tokenizer of a GGUF model, built from its own metadata (tokens, merges, token types,
//! pre-tokenizer name), so that no `tokenizer.json` is needed next to the weights.
//!
//! candle's generic GGUF tokenizer is wrong for SmolLM2 (`pre = "smollm"` needs individual
//! digits and no prefix space); the pre-tokenizer is chosen here from `tokenizer.ggml.pre`
//! the way llama.cpp does, and checked against llama.cpp's output in the tests.

use crate::gguf::{GgufError, GgufFile};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Control tokens that end a turn in common chat formats; llama.cpp treats them as
/// end-of-generation too.
const END_OF_TURN_TOKENS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<end_of_turn>",
    "<|end|>",
    "<|end_of_text|>",
];

/// The llama-3 / Qwen2 split pattern (GPT-4 style with 1–3 digit groups).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("tokenizer model '{0}' is not supported (supported: gpt2-style BPE)")]
    UnsupportedModel(String),
    #[error("pre-tokenizer '{0}' is not supported (supported: smollm, llama-bpe, qwen2, gpt2)")]
    UnsupportedPre(String),
    #[error("building the tokenizer: {0}")]
    Build(String),
}

/// A byte-level BPE tokenizer plus the special ids generation needs.
pub struct GgufTokenizer {
    inner: Tokenizer,
    pub bos_id: Option<u32>,
    pub eos_id: u32,
    /// Ids that end generation (EOS and the chat formats' end-of-turn tokens).
    pub stop_ids: Vec<u32>,
    pub vocab_size: usize,
    id_to_token: Vec<String>,
}

impl GgufTokenizer {
    pub fn from_gguf(g: &GgufFile) -> Result<Self, TokenizerError> {
        let model = g.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizerError::UnsupportedModel(model.to_string()));
        }
        let pre = g
            .get_str("tokenizer.ggml.pre")
            .unwrap_or("gpt2")
            .to_string();
        let tokens = g.get_str_array("tokenizer.ggml.tokens")?;
        let types = g
            .get_i32_array("tokenizer.ggml.token_type")
            .unwrap_or_else(|_| vec![1; tokens.len()]);
        let merges = g.get_str_array("tokenizer.ggml.merges")?;

        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges: Vec<(String, String)> = merges
            .iter()
            .filter_map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer(&pre)?));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        if pre != "smollm" && pre != "gpt2" {
            inner
                .with_normalizer(Some(NFC))
                .map_err(|e| TokenizerError::Build(e.to_string()))?;
        }
        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL || **t == TOKEN_TYPE_USER_DEFINED)
            .map(|(tok, _)| AddedToken::from(tok.clone(), true))
            .collect();
        inner
            .add_special_tokens(special)
            .map_err(|e| TokenizerError::Build(e.to_string()))?;

        let eos_id = g.get_u32("tokenizer.ggml.eos_token_id")?;
        let bos_id = g.get_u32("tokenizer.ggml.bos_token_id").ok();
        let mut stop_ids = vec![eos_id];
        for name in END_OF_TURN_TOKENS {
            if let Some(i) = tokens.iter().position(|t| t == name) {
                if !stop_ids.contains(&(i as u32)) {
                    stop_ids.push(i as u32);
                }
            }
        }
        Ok(GgufTokenizer {
            inner,
            bos_id,
            eos_id,
            stop_ids,
            vocab_size: tokens.len(),
            id_to_token: tokens,
        })
    }

    /// Encodes text; special-token strings in it (e.g. `<|im_start|>`) become their ids,
    /// as they do in chat templates.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.inner
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| TokenizerError::Build(e.to_string()))
    }

    /// Decodes ids to text, keeping special tokens (they are part of what the model wrote).
    pub fn decode(&self, ids: &[u32]) -> String {
        self.inner.decode(ids, false).unwrap_or_default()
    }

    /// The text piece of one token as the API reports it (`token` in log-prob entries).
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id])
    }

    /// The raw vocabulary string of a token (byte-level alphabet).
    pub fn vocab_entry(&self, id: u32) -> Option<&str> {
        self.id_to_token.get(id as usize).map(|s| s.as_str())
    }
}

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, TokenizerError> {
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
        let s = Split::new(
            SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
        Ok(Sequence::new(vec![s.into(), ByteLevel::new(false, false, false).into()]).into())
    };
    match pre {
        // SmolLM / StarCoder: every digit on its own, then GPT-2 byte-level splitting.
        "smollm" | "starcoder" => Ok(Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into()),
        "gpt2" => Ok(ByteLevel::new(false, true, true).into()),
        "llama-bpe" | "llama3" | "smaug-bpe" => split(LLAMA3_PATTERN),
        "qwen2" | "deepseek-r1-qwen" => split(QWEN2_PATTERN),
        other => Err(TokenizerError::UnsupportedPre(other.to_string())),
    }
}
