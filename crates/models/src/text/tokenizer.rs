//! The tokenizer of a GGUF model, built from its own metadata (tokens, merges or scores, token
//! types, pre-tokenizer name), so that no `tokenizer.json` is needed next to the weights.
//!
//! candle's generic GGUF tokenizer is wrong for SmolLM2 (`pre = "smollm"` needs individual
//! digits and no prefix space); the pre-tokenizer is chosen here from `tokenizer.ggml.pre`
//! the way llama.cpp does, and checked against llama.cpp's output in the tests.

use crate::arch::gguf::{GgufError, GgufFile};
use crate::text::spm::SpmVocab;
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
const TOKEN_TYPE_UNKNOWN: i32 = 2;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Control tokens that end a turn in common chat formats; llama.cpp treats them as
/// end-of-generation too.
const END_OF_TURN_TOKENS: &[&str] =
    &["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|end_of_text|>"];

/// The llama-3 / Qwen2 split pattern (GPT-4 style with 1–3 digit groups).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error("tokenizer model '{0}' is not supported (supported: gpt2 (byte-level BPE), llama (SentencePiece))")]
    UnsupportedModel(String),
    #[error("pre-tokenizer '{0}' is not supported (supported: smollm, llama-bpe, qwen2, gpt2)")]
    UnsupportedPre(String),
    #[error("building the tokenizer: {0}")]
    Build(String),
}

/// Which tokenisation a GGUF file asks for.
enum Model {
    /// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`): SmolLM2, Llama 3, Qwen.
    Bpe(Box<Tokenizer>),
    /// SentencePiece-style (`"llama"`): Gemma. Special-token strings are split off first,
    /// longest first, as llama.cpp does.
    Spm { vocab: SpmVocab, specials: Vec<(String, u32)> },
}

/// A GGUF model's tokenizer plus the special ids generation needs.
pub struct GgufTokenizer {
    model: Model,
    pub bos_id: Option<u32>,
    pub eos_id: u32,
    /// Ids that end generation (EOS and the chat formats' end-of-turn tokens).
    pub stop_ids: Vec<u32>,
    pub vocab_size: usize,
    id_to_token: Vec<String>,
}

impl GgufTokenizer {
    pub fn from_gguf(g: &GgufFile) -> Result<Self, TokenizerError> {
        let kind = g.get_str("tokenizer.ggml.model")?.to_string();
        let tokens = g.get_str_array("tokenizer.ggml.tokens")?;
        let types = g.get_i32_array("tokenizer.ggml.token_type").unwrap_or_else(|_| vec![1; tokens.len()]);
        let model = match kind.as_str() {
            "gpt2" => Model::Bpe(Box::new(bpe_from_gguf(g, &tokens, &types)?)),
            "llama" => {
                let scores = g.get_f32_array("tokenizer.ggml.scores")?;
                let unk = g.get_u32("tokenizer.ggml.unknown_token_id").unwrap_or(0);
                let prefix =
                    g.metadata().get("tokenizer.ggml.add_space_prefix").and_then(|v| v.to_bool().ok()).unwrap_or(true);
                let mut specials: Vec<(String, u32)> = tokens
                    .iter()
                    .zip(&types)
                    .enumerate()
                    .filter(|(_, (t, ty))| {
                        !t.is_empty()
                            && matches!(**ty, TOKEN_TYPE_UNKNOWN | TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED)
                    })
                    .map(|(i, (t, _))| (t.clone(), i as u32))
                    .collect();
                specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
                Model::Spm { vocab: SpmVocab::new(tokens.clone(), scores, unk, prefix), specials }
            }
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };

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
        Ok(GgufTokenizer { model, bos_id, eos_id, stop_ids, vocab_size: tokens.len(), id_to_token: tokens })
    }

    /// Encodes text; special-token strings in it (e.g. `<|im_start|>`) become their ids,
    /// as they do in chat templates.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        match &self.model {
            Model::Bpe(t) => t
                .encode_fast(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| TokenizerError::Build(e.to_string())),
            Model::Spm { vocab, specials } => {
                let mut out = Vec::new();
                let mut after_special = true;
                for piece in split_specials(text, specials) {
                    match piece {
                        Piece::Special(id) => {
                            out.push(id);
                            after_special = true;
                        }
                        Piece::Text(t) => {
                            vocab.encode_fragment(t, after_special, &mut out);
                            after_special = false;
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Decodes ids to text, keeping special tokens (they are part of what the model wrote).
    pub fn decode(&self, ids: &[u32]) -> String {
        match &self.model {
            Model::Bpe(t) => t.decode(ids, false).unwrap_or_default(),
            Model::Spm { vocab, .. } => {
                let bytes: Vec<u8> = ids.iter().flat_map(|&i| vocab.piece_bytes(i)).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
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

fn bpe_from_gguf(g: &GgufFile, tokens: &[String], types: &[i32]) -> Result<Tokenizer, TokenizerError> {
    let pre = g.get_str("tokenizer.ggml.pre").unwrap_or("gpt2").to_string();
    let merges = g.get_str_array("tokenizer.ggml.merges")?;
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let merges: Vec<(String, String)> =
        merges.iter().filter_map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string()))).collect();
    let bpe =
        BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| TokenizerError::Build(e.to_string()))?;
    let mut inner = Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(pre_tokenizer(&pre)?));
    inner.with_decoder(Some(ByteLevelDecoder::default()));
    if pre != "smollm" && pre != "gpt2" {
        inner.with_normalizer(Some(NFC)).map_err(|e| TokenizerError::Build(e.to_string()))?;
    }
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(types)
        .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL || **t == TOKEN_TYPE_USER_DEFINED)
        .map(|(tok, _)| AddedToken::from(tok.clone(), true))
        .collect();
    inner.add_special_tokens(special).map_err(|e| TokenizerError::Build(e.to_string()))?;

    Ok(inner)
}

enum Piece<'a> {
    Text(&'a str),
    Special(u32),
}

/// Splits `text` at special-token strings: for each special, longest first, every occurrence
/// in the remaining plain text (llama.cpp's partitioning, so ids agree with it).
fn split_specials<'a>(text: &'a str, specials: &[(String, u32)]) -> Vec<Piece<'a>> {
    let mut parts = vec![Piece::Text(text)];
    for (tok, id) in specials {
        let mut next = Vec::with_capacity(parts.len());
        for p in parts {
            match p {
                Piece::Text(t) if t.contains(tok.as_str()) => {
                    let mut rest = t;
                    while let Some(at) = rest.find(tok.as_str()) {
                        if at > 0 {
                            next.push(Piece::Text(&rest[..at]));
                        }
                        next.push(Piece::Special(*id));
                        rest = &rest[at + tok.len()..];
                    }
                    if !rest.is_empty() {
                        next.push(Piece::Text(rest));
                    }
                }
                other => next.push(other),
            }
        }
        parts = next;
    }
    parts
}

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, TokenizerError> {
    let split = |pattern: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
        let s = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| TokenizerError::Build(e.to_string()))?;
        Ok(Sequence::new(vec![s.into(), ByteLevel::new(false, false, false).into()]).into())
    };
    match pre {
        // SmolLM / StarCoder: every digit on its own, then GPT-2 byte-level splitting.
        "smollm" | "starcoder" => {
            Ok(Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]).into())
        }
        "gpt2" => Ok(ByteLevel::new(false, true, true).into()),
        "llama-bpe" | "llama3" | "smaug-bpe" => split(LLAMA3_PATTERN),
        "qwen2" | "deepseek-r1-qwen" => split(QWEN2_PATTERN),
        other => Err(TokenizerError::UnsupportedPre(other.to_string())),
    }
}
