//! Sentence embeddings with all-MiniLM-L6-v2 (384-d, unit length): the frozen features of
//! Best-of-Q's Q-function and the `/v1/embeddings` endpoint.

use crate::arch::bert::{cpu, mean_pool_normalize, Bert, BertConfig};
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

/// What can go wrong loading the embedder or embedding with it.
#[derive(Debug, thiserror::Error)]
pub enum EmbedderError {
    #[error(transparent)]
    Home(#[from] crate::home::HomeError),
    /// A file of the model folder that cannot be read or used, with why.
    #[error("{what} {path}: {reason}")]
    File { what: &'static str, path: String, reason: String },
    #[error("tokenizing: {0}")]
    Tokenizer(String),
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

fn file_error(what: &'static str, path: &Path, reason: impl std::fmt::Display) -> EmbedderError {
    EmbedderError::File { what, path: path.display().to_string(), reason: reason.to_string() }
}

/// sentence-transformers' `max_seq_length` for this model.
const MAX_TOKENS: usize = 256;

pub struct Embedder {
    bert: Bert,
    tokenizer: Tokenizer,
    /// Identity of the model (name + weights hash), stored with anything trained on these
    /// features so that a mismatch is caught.
    pub id: String,
}

impl Embedder {
    /// Loads from a folder with `config.json`, `model.safetensors` and `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self, EmbedderError> {
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| file_error("reading", &cfg_path, e))?;
        let cfg: BertConfig = serde_json::from_str(&text).map_err(|e| file_error("parsing", &cfg_path, e))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| file_error("loading", &tokenizer_path, e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| EmbedderError::Tokenizer(format!("truncation: {e}")))?;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only; set-up checked its SHA-256.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &cpu()) }
            .map_err(|e| file_error("loading", &weights, e))?;
        let bert = Bert::load(vb, cfg).map_err(|e| file_error("building BERT from", &weights, e))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Embedder { bert, tokenizer, id: name })
    }

    /// Loads the installed all-MiniLM-L6-v2 (error names the set-up command when missing).
    pub fn load_installed() -> Result<Self, EmbedderError> {
        let dir = crate::home::model_dir("all-minilm-l6-v2")?;
        let mut e = Self::load(&dir)?;
        e.id = "all-minilm-l6-v2".into();
        Ok(e)
    }

    pub fn dim(&self) -> usize {
        self.bert.cfg.hidden_size
    }

    /// Embeds `texts` (unit vectors), at most `batch_size` at a time, in the order given.
    /// Results do not depend on the batching: padding is masked out of attention and pooling.
    ///
    /// Texts are batched by length (shortest first, a batch closed once its padded size would
    /// pass `PADDED_TOKENS_PER_BATCH`), so one long text — a state beside short candidate
    /// actions — does not make every short one pay for its padding.
    pub fn embed(&self, texts: &[&str], batch_size: usize) -> Result<Vec<Vec<f32>>, EmbedderError> {
        const PADDED_TOKENS_PER_BATCH: usize = 4096;
        let batch_size = batch_size.max(1);
        let enc =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedderError::Tokenizer(e.to_string()))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| enc[i].get_ids().len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted, so the last text of a batch is its longest.
            let mut end = start + 1;
            while end < order.len()
                && end - start < batch_size
                && (end - start + 1) * enc[order[end]].get_ids().len() <= PADDED_TOKENS_PER_BATCH
            {
                end += 1;
            }
            let batch = &order[start..end];
            let s = enc[order[end - 1]].get_ids().len().max(1);
            let mut ids = Vec::with_capacity(batch.len() * s);
            let mut mask = Vec::with_capacity(batch.len() * s);
            for &i in batch {
                let n = enc[i].get_ids().len();
                ids.extend_from_slice(enc[i].get_ids());
                ids.extend(std::iter::repeat_n(0u32, s - n));
                mask.extend(std::iter::repeat_n(1u32, n));
                mask.extend(std::iter::repeat_n(0u32, s - n));
            }
            let ids = Tensor::from_vec(ids, (batch.len(), s), &cpu())?;
            let mask = Tensor::from_vec(mask, (batch.len(), s), &cpu())?;
            let states = self.bert.forward(&ids, &mask)?;
            for (&i, v) in batch.iter().zip(mean_pool_normalize(&states, &mask)?.to_vec2::<f32>()?) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// Number of tokens `text` counts for (after truncation), for usage reporting.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer.encode(text, true).map(|e| e.get_ids().len()).unwrap_or(0)
    }
}

/// Cosine similarity of two unit vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
