//! A trained Q-function as the episode runner's scorer: embeds the state and each candidate
//! (through the cache) and returns Q.

use crate::error::{QError, Result};
use crate::features::{FeatureCache, Features};
use crate::qnet::QNet;
use crate::state::ActionScorer;
use std::path::Path;

pub struct QScorer {
    net: QNet,
    cache: FeatureCache,
}

/// Where embeddings are cached: `$KAIZEN_HOME/cache/embeddings`.
pub fn default_cache_dir() -> std::path::PathBuf {
    kaizen_core::home::kaizen_home().join("cache").join("embeddings")
}

impl QScorer {
    /// A Q-head over features from `cache` (which must be the embedder the head was trained on).
    pub fn new(net: QNet, cache: FeatureCache) -> Result<Self> {
        if net.cfg.embedder != cache.identity() {
            return Err(QError::Input(format!(
                "the Q-function reads {} features, the cache gives {}",
                net.cfg.embedder,
                cache.identity()
            )));
        }
        Ok(QScorer { net, cache })
    }

    /// Loads `path` with the installed features it was trained on (MiniLM or the policy's
    /// hidden states); refuses a Q-function whose features are not installed.
    /// The content of the tasks the Q-function was trained on (`QNet::trained_on`).
    pub fn trained_on(&self) -> &std::collections::BTreeSet<String> {
        &self.net.trained_on
    }

    pub fn load(path: &Path) -> Result<Self> {
        let features = Features::for_identity(&QNet::config_of(path)?.embedder)?;
        let net = QNet::load(path, &features.identity())?;
        Self::new(net, FeatureCache::new(features, &default_cache_dir()))
    }
}

impl ActionScorer for QScorer {
    fn score(&self, state: &str, picture: Option<&str>, actions: &[(String, f32)]) -> Result<Vec<f32>, String> {
        let mut texts: Vec<&str> = vec![state];
        texts.extend(actions.iter().map(|(a, _)| a.as_str()));
        let (mut vecs, _) = self.cache.embed(&texts).map_err(|e| e.to_string())?;
        let feats: Vec<(Vec<f32>, f32)> = vecs[1..].iter().cloned().zip(actions.iter().map(|(_, lp)| *lp)).collect();
        let side = self.net.cfg.picture_side;
        if side > 0 {
            vecs[0].extend(crate::picture::thumbnail(picture, side)?);
        }
        self.net.score(&vecs[0], &feats).map_err(|e| e.to_string())
    }
}
