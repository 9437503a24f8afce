//! Features for the Q-function: frozen embeddings of a state (its text from
//! `crate::state::state_text`) and of a candidate action — MiniLM sentence
//! embeddings, or the policy's own pooled hidden states — cached on disk by content hash so
//! that retraining, or reranking the same state again, never re-embeds a text.

use crate::error::{QError, Result};
use kaizen_models::{Embedder, LocalLlm, WeightFormat};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tokens of a text the policy reads for its features (the most recent ones).
const POLICY_FEATURE_TOKENS: usize = 384;

/// Where a Q-function's features come from.
#[derive(Clone)]
pub enum Features {
    /// all-MiniLM-L6-v2 sentence embeddings (the default).
    MiniLm(Arc<Embedder>),
    /// SmolLM2's own reading of the text: its final hidden states, mean-pooled.
    Policy(Arc<LocalLlm>),
}

impl Features {
    /// `minilm` or `smollm2` (the installed models).
    pub fn open(kind: &str) -> Result<Self> {
        match kind {
            "minilm" => Ok(Features::MiniLm(Arc::new(Embedder::load_installed()?))),
            "smollm2" => Ok(Features::Policy(Arc::new(LocalLlm::load_installed("smollm2", WeightFormat::Q8_0)?))),
            other => Err(QError::UnknownFeatures(other.to_string())),
        }
    }

    /// The installed features a Q-function trained on `identity` reads; an error when none
    /// installed matches (other weights, another model).
    pub fn for_identity(identity: &str) -> Result<Self> {
        for kind in ["minilm", "smollm2"] {
            if kind_identity(kind) == identity {
                return Self::open(kind);
            }
        }
        Err(QError::FeaturesNotInstalled {
            wanted: identity.to_string(),
            installed: format!("{} and {}", kind_identity("minilm"), kind_identity("smollm2")),
        })
    }

    /// The model and the hash of its weights: features of another identity never mix.
    pub fn identity(&self) -> String {
        match self {
            Features::MiniLm(_) => kind_identity("minilm"),
            Features::Policy(_) => kind_identity("smollm2"),
        }
    }

    pub fn dim(&self) -> usize {
        match self {
            Features::MiniLm(e) => e.dim(),
            Features::Policy(llm) => llm.hidden_size(),
        }
    }

    /// One unit-length vector per text.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match self {
            Features::MiniLm(e) => Ok(e.embed(texts, 32)?),
            Features::Policy(llm) => Ok(llm.pooled_hidden(texts, POLICY_FEATURE_TOKENS)?),
        }
    }
}

/// `name@sha16` of an installed model's weights file (from the lock).
fn installed_identity(model: &str, file_suffix: &str, label: &str) -> String {
    let sha = kaizen_models::home::model_files()
        .into_iter()
        .find(|f| f.model == model && f.relative_path.ends_with(file_suffix))
        .map(|f| f.sha256)
        .unwrap_or_default();
    format!("{label}@{}", &sha[..sha.len().min(16)])
}

fn kind_identity(kind: &str) -> String {
    match kind {
        "minilm" => installed_identity("all-minilm-l6-v2", "model.safetensors", "all-minilm-l6-v2"),
        _ => installed_identity("smollm2-135m-instruct", ".gguf", "smollm2-135m-instruct-hidden-mean"),
    }
}

/// Embeddings through a content-addressed disk cache: `DIR/ab/abcdef….f32`, the key being
/// SHA-256 of the features' identity and the text, the file the vector as little-endian f32.
pub struct FeatureCache {
    features: Features,
    identity: String,
    dir: PathBuf,
}

impl FeatureCache {
    pub fn new(features: Features, dir: &Path) -> Self {
        let identity = features.identity();
        FeatureCache { features, identity, dir: dir.to_path_buf() }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn dim(&self) -> usize {
        self.features.dim()
    }

    fn path(&self, text: &str) -> PathBuf {
        let mut h = Sha256::new();
        h.update(self.identity.as_bytes());
        h.update([0u8]);
        h.update(text.as_bytes());
        let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(&key[..2]).join(format!("{}.f32", &key[2..]))
    }

    fn read(&self, path: &Path) -> Option<Vec<f32>> {
        let bytes = std::fs::read(path).ok()?;
        (bytes.len() == 4 * self.dim())
            .then(|| bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// One vector per text, embedding only those not cached yet (in one batch); returns the
    /// vectors and how many came from the cache.
    pub fn embed(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, usize)> {
        let paths: Vec<PathBuf> = texts.iter().map(|t| self.path(t)).collect();
        let mut out: Vec<Option<Vec<f32>>> = paths.iter().map(|p| self.read(p)).collect();
        let hits = out.iter().filter(|v| v.is_some()).count();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let batch: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let vecs = self.features.encode(&batch)?;
            for (&i, v) in missing.iter().zip(vecs) {
                let path = &paths[i];
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(QError::io(parent))?;
                }
                // Written whole under a temporary name, then renamed: a reader never sees half.
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                std::fs::write(&tmp, bytes).map_err(QError::io(&tmp))?;
                std::fs::rename(&tmp, path).map_err(QError::io(path))?;
                out[i] = Some(v);
            }
        }
        Ok((out.into_iter().map(Option::unwrap_or_default).collect(), hits))
    }
}
