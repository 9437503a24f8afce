//! Features for the Q-function: frozen sentence embeddings of a state (its text from
//! `kaizen_rollout::rerank::state_text`) and of a candidate action, cached on disk by content hash so that
//! retraining, or reranking the same state again, never re-embeds a text.

use kaizen_models::Embedder;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Embeddings through a content-addressed disk cache: `DIR/ab/abcdef….f32`, the key being
/// SHA-256 of the embedder's identity and the text, the file the vector as little-endian f32.
pub struct FeatureCache {
    embedder: std::sync::Arc<Embedder>,
    identity: String,
    dir: PathBuf,
}

impl FeatureCache {
    /// `identity` names the embedder and its weights; vectors of another identity never mix.
    pub fn new(embedder: std::sync::Arc<Embedder>, identity: &str, dir: &Path) -> Self {
        FeatureCache { embedder, identity: identity.to_string(), dir: dir.to_path_buf() }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn dim(&self) -> usize {
        self.embedder.dim()
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
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<(Vec<Vec<f32>>, usize)> {
        let paths: Vec<PathBuf> = texts.iter().map(|t| self.path(t)).collect();
        let mut out: Vec<Option<Vec<f32>>> = paths.iter().map(|p| self.read(p)).collect();
        let hits = out.iter().filter(|v| v.is_some()).count();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let batch: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let vecs = self.embedder.embed(&batch, 32)?;
            for (&i, v) in missing.iter().zip(vecs) {
                let path = &paths[i];
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // Written whole under a temporary name, then renamed: a reader never sees half.
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, path)?;
                out[i] = Some(v);
            }
        }
        Ok((out.into_iter().map(Option::unwrap_or_default).collect(), hits))
    }
}

/// The installed MiniLM's identity: its name and the SHA-256 of its weights (from the lock).
pub fn minilm_identity() -> String {
    let sha = kaizen_models::home::model_files()
        .into_iter()
        .find(|f| f.model == "all-minilm-l6-v2" && f.relative_path.ends_with("model.safetensors"))
        .map(|f| f.sha256)
        .unwrap_or_default();
    format!("all-minilm-l6-v2@{}", &sha[..sha.len().min(16)])
}
