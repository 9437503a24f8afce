//! The Q-head: an MLP over `[e_s, e_a, e_s ⊙ e_a, p_s, log π(a|s)]` → scalar (`p_s`: the
//! state's picture thumbnail, absent for text-only Q-functions), trained offline by
//! one of three objectives. Saved as safetensors whose metadata carries its config, including
//! the embedder's identity: a Q-function refuses features from another embedder.

use crate::error::{QError, Result};
use crate::objectives::{iql_q_target, td_target};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::{linear, Linear, Module, Optimizer, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// The safetensors metadata key of `QNet::trained_on`.
const TRAINED_ON: &str = "kaizen_q_trained_on";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Regress on the Monte-Carlo return of the logged episode.
    Mc,
    /// TD(0) fitted-Q with a target network; max over the next state's logged candidates.
    Td,
    /// IQL (Kostrikov et al., arXiv 2110.06169): a value head learns an upper expectile of the
    /// *target* network's Q on logged actions; Q regresses on `r + γ(1 − done)·V(s')` with the
    /// *online* V.
    Iql,
}

impl std::str::FromStr for Objective {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mc" => Ok(Objective::Mc),
            "td" => Ok(Objective::Td),
            "iql" => Ok(Objective::Iql),
            _ => Err(format!("unknown objective '{s}' (allowed: mc, td, iql)")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QConfig {
    /// Embedding size (384 for MiniLM).
    pub dim: usize,
    pub hidden: usize,
    /// Identity of the embedder whose features this Q-function reads.
    pub embedder: String,
    pub objective: Objective,
    pub gamma: f32,
    /// IQL's expectile.
    pub tau: f32,
    /// Side of the thumbnail of the state's latest picture it reads (`picture::thumbnail`);
    /// 0: text only (and every Q-function saved before pictures).
    #[serde(default)]
    pub picture_side: usize,
}

impl QConfig {
    /// Values of a state's features: its text's embedding, then its picture's thumbnail.
    pub fn state_len(&self) -> usize {
        self.dim + if self.picture_side > 0 { crate::picture::len(self.picture_side) } else { 0 }
    }
}

/// One logged step, as features. `next` is the next state with its logged candidate
/// actions (for TD's max and IQL's V(s')); `None` at the end of an episode.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Task id, for the train/validation split and for grouping actions of one state.
    pub task: String,
    /// Which state of the task this is (same key = same state, e.g. the first step).
    pub state_key: String,
    /// The state's features, `QConfig::state_len` values: text embedding, then thumbnail.
    pub state: Vec<f32>,
    pub action: Vec<f32>,
    pub logprob: f32,
    pub reward: f32,
    pub done: bool,
    pub mc_return: f32,
    /// Did the episode succeed (for AUC and top-1).
    pub success: bool,
    pub next: Option<(Vec<f32>, Vec<(Vec<f32>, f32)>)>,
}

pub struct QNet {
    pub cfg: QConfig,
    /// The content (`Task::content_key`) of every task whose episodes it was trained on, saved
    /// with it, so that an evaluation can hold out exactly those (empty: unknown, e.g. trained
    /// on proxy logs, which carry no env tasks).
    pub trained_on: BTreeSet<String>,
    vars: VarMap,
    q: [Linear; 3],
    v: [Linear; 2],
}

fn mlp(vb: &VarBuilder, prefix: &str, input: usize, hidden: usize) -> candle_core::Result<[Linear; 3]> {
    Ok([
        linear(input, hidden, vb.pp(format!("{prefix}.0")))?,
        linear(hidden, hidden, vb.pp(format!("{prefix}.1")))?,
        linear(hidden, 1, vb.pp(format!("{prefix}.2")))?,
    ])
}

impl QNet {
    /// A fresh network, initialised from `seed` (PyTorch's default for linear layers:
    /// weights uniform in ±1/√fan_in, biases zero), so training is reproducible.
    pub fn new(cfg: QConfig) -> candle_core::Result<Self> {
        Self::seeded(cfg, 0)
    }

    pub fn seeded(cfg: QConfig, seed: u64) -> candle_core::Result<Self> {
        use rand::{Rng, SeedableRng};
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let q = mlp(&vb, "q", 2 * cfg.dim + cfg.state_len() + 1, cfg.hidden)?;
        let v = [linear(cfg.state_len(), cfg.hidden, vb.pp("v.0"))?, linear(cfg.hidden, 1, vb.pp("v.1"))?];
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let data = vars.data().lock().map_err(|_| candle_core::Error::Msg("poisoned variables".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let dims = var.dims().to_vec();
            let init: Vec<f32> = if name.ends_with("weight") {
                let bound = 1.0 / (dims[1] as f32).sqrt();
                (0..dims.iter().product::<usize>()).map(|_| rng.random_range(-bound..bound)).collect()
            } else {
                vec![0.0; dims.iter().product()]
            };
            var.set(&Tensor::from_vec(init, dims, &Device::Cpu)?)?;
        }
        drop(data);
        Ok(QNet { cfg, trained_on: BTreeSet::new(), vars, q, v })
    }

    /// The input rows `[e_s, e_a, e_s ⊙ e_a, p_s, log-prob]`: `states` holds `e_s` (the
    /// text's embedding, as wide as `e_a`) then `p_s` (the picture's thumbnail, if any).
    fn input(states: &Tensor, actions: &Tensor, logprobs: &Tensor) -> candle_core::Result<Tensor> {
        let (rows, d) = actions.dims2()?;
        let text = states.narrow(1, 0, d)?;
        let width = states.dim(1)?.checked_sub(d).ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "states of {} values are narrower than actions of {d}",
                states.dim(1).unwrap_or(0)
            ))
        })?;
        let picture = states.narrow(1, d, width)?;
        let parts = [&text, actions, &(&text * actions)?, &picture, &logprobs.reshape((rows, 1))?];
        Tensor::cat(&parts, 1)
    }

    fn q_of(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.q[0].forward(x)?.relu()?;
        let h = self.q[1].forward(&h)?.relu()?;
        self.q[2].forward(&h)?.squeeze(D::Minus1)
    }

    fn v_of(&self, s: &Tensor) -> candle_core::Result<Tensor> {
        self.v[1].forward(&self.v[0].forward(s)?.relu()?)?.squeeze(D::Minus1)
    }

    /// Q of each candidate action in one state.
    pub fn score(&self, state: &[f32], actions: &[(Vec<f32>, f32)]) -> Result<Vec<f32>> {
        if actions.is_empty() {
            return Ok(vec![]);
        }
        let (d, ds) = (self.cfg.dim, self.cfg.state_len());
        if state.len() != ds {
            return Err(QError::Input(format!(
                "state features have {} values, the Q-function reads {ds}",
                state.len()
            )));
        }
        let n = actions.len();
        let s = Tensor::from_vec(state.repeat(n), (n, ds), &Device::Cpu)?;
        let flat: Vec<f32> = actions.iter().flat_map(|(a, _)| a.iter().copied()).collect();
        if flat.len() != n * d {
            return Err(QError::Input(format!("action features must have {d} values each")));
        }
        let a = Tensor::from_vec(flat, (n, d), &Device::Cpu)?;
        let lp = Tensor::from_vec(actions.iter().map(|(_, l)| *l).collect::<Vec<_>>(), n, &Device::Cpu)?;
        Ok(self.q_of(&Self::input(&s, &a, &lp)?)?.to_vec1()?)
    }

    /// Saves weights and config (as safetensors metadata) atomically and durably (written under
    /// a temporary name, flushed, renamed, the directory flushed).
    pub fn save(&self, path: &Path) -> Result<()> {
        let data = self.vars.data().lock().map_err(|_| QError::Poisoned)?;
        let tensors: Vec<(String, Tensor)> = data.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        drop(data);
        let meta = std::collections::HashMap::from([
            ("kaizen_q".to_string(), serde_json::to_string(&self.cfg)?),
            (TRAINED_ON.to_string(), serde_json::to_string(&self.trained_on)?),
        ]);
        let tmp = path.with_extension("partial");
        let views: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(k, t)| {
                Ok((
                    k.clone(),
                    t.flatten_all()?.to_vec1::<f32>()?.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    t.dims().to_vec(),
                ))
            })
            .collect::<Result<_>>()?;
        let tv: Vec<(String, safetensors::tensor::TensorView)> = views
            .iter()
            .map(|(k, b, s)| {
                Ok((k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?))
            })
            .collect::<Result<_>>()?;
        safetensors::serialize_to_file(tv, Some(meta), &tmp)?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(QError::io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(QError::io(path))?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        kaizen_core::durable::sync_dir(dir).map_err(QError::io(dir))?;
        Ok(())
    }

    /// The config a saved Q-function carries (which features it reads, among others).
    pub fn config_of(path: &Path) -> Result<QConfig> {
        let bytes = std::fs::read(path).map_err(QError::io(path))?;
        Self::config_in(path, &bytes)
    }

    fn config_in(path: &Path, bytes: &[u8]) -> Result<QConfig> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| QError::File { path: path.to_path_buf(), what: e.to_string() })?;
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("kaizen_q"))
            .ok_or_else(|| QError::NotAQFunction(path.to_path_buf()))?;
        serde_json::from_str(json).map_err(|e| QError::File { path: path.to_path_buf(), what: e.to_string() })
    }

    /// Loads a saved Q-function; refuses one trained on another embedder's features.
    pub fn load(path: &Path, embedder: &str) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(QError::io(path))?;
        let cfg = Self::config_in(path, &bytes)?;
        if cfg.embedder != embedder {
            return Err(QError::OtherFeatures {
                path: path.to_path_buf(),
                trained: cfg.embedder,
                given: embedder.to_string(),
            });
        }
        let mut net = QNet::new(cfg)?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
        if let Some(json) = meta.metadata().as_ref().and_then(|m| m.get(TRAINED_ON)) {
            net.trained_on = serde_json::from_str(json).map_err(|e| QError::File {
                path: path.to_path_buf(),
                what: format!("unreadable list of training tasks: {e}"),
            })?;
        }
        let loaded = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        for (name, var) in net.vars.data().lock().map_err(|_| QError::Poisoned)?.iter() {
            let t = loaded
                .get(name)
                .ok_or_else(|| QError::File { path: path.to_path_buf(), what: format!("lacks {name}") })?;
            var.set(t)?;
        }
        Ok(net)
    }
}

/// Validation figures of a trained Q-function.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auc: Option<f64>,
    pub val_top1: Option<f64>,
    /// How many validation states top-1 is computed over (those with both outcomes).
    pub val_top1_groups: usize,
}

struct Batch {
    x: Tensor,
    s: Tensor,
    r: Vec<f32>,
    done: Vec<bool>,
    mc: Vec<f32>,
}

fn batch(ts: &[&Transition], cfg: &QConfig) -> candle_core::Result<Batch> {
    let (n, d) = (ts.len(), cfg.dim);
    let dev = Device::Cpu;
    let s = Tensor::from_vec(ts.iter().flat_map(|t| t.state.clone()).collect(), (n, cfg.state_len()), &dev)?;
    let a = Tensor::from_vec(ts.iter().flat_map(|t| t.action.clone()).collect(), (n, d), &dev)?;
    let lp = Tensor::from_vec(ts.iter().map(|t| t.logprob).collect(), n, &dev)?;
    Ok(Batch {
        x: QNet::input(&s, &a, &lp)?,
        s,
        r: ts.iter().map(|t| t.reward).collect(),
        done: ts.iter().map(|t| t.done).collect(),
        mc: ts.iter().map(|t| t.mc_return).collect(),
    })
}

impl QNet {
    /// Q's regression targets for `ts`. TD(0) reads the target network (`target`) at s′, over
    /// the logged candidates; IQL reads the online value head (`self`) at s′, as the paper's
    /// `L_Q(θ) = E (r + γ(1−done)·V_ψ(s′) − Q_θ(s,a))²` does; MC reads the logged return.
    /// Every target is a constant of the step (no gradient flows through it).
    fn targets(&self, target: &QNet, ts: &[&Transition], b: &Batch) -> Result<Vec<f32>> {
        let g = self.cfg.gamma;
        Ok(match self.cfg.objective {
            Objective::Mc => b.mc.clone(),
            Objective::Td => ts
                .iter()
                .zip(b.r.iter().zip(&b.done))
                .map(|(t, (&r, &done))| {
                    let next = match &t.next {
                        Some((s2, cands)) if !done => target.score(s2, cands)?,
                        _ => vec![],
                    };
                    Ok(td_target(r, done, g, &next))
                })
                .collect::<Result<_>>()?,
            Objective::Iql => ts
                .iter()
                .zip(b.r.iter().zip(&b.done))
                .map(|(t, (&r, &done))| {
                    let v = match &t.next {
                        Some((s2, _)) if !done => {
                            let s2 = Tensor::from_vec(s2.clone(), (1, s2.len()), &Device::Cpu)?;
                            self.v_of(&s2)?.to_vec1::<f32>()?[0]
                        }
                        _ => 0.0,
                    };
                    Ok(iql_q_target(r, done, g, v))
                })
                .collect::<Result<_>>()?,
        })
    }

    fn copy(&self) -> Result<QNet> {
        let twin = QNet::new(self.cfg.clone())?;
        let src = self.vars.data().lock().map_err(|_| QError::Poisoned)?;
        for (name, var) in twin.vars.data().lock().map_err(|_| QError::Poisoned)?.iter() {
            if let Some(v) = src.get(name) {
                var.set(&v.as_tensor().copy()?)?;
            }
        }
        Ok(twin)
    }

    fn loss(&self, ts: &[&Transition], target_net: &QNet) -> Result<Tensor> {
        let (q_loss, v_loss) = self.losses(ts, target_net)?;
        Ok(match v_loss {
            Some(v) => (q_loss + v)?,
            None => q_loss,
        })
    }

    /// Q's squared error against `targets`, and for IQL V's expectile loss
    /// `L_V(ψ) = E L₂^τ(Q_θ̂(s,a) − V_ψ(s))` on the logged actions, `Q_θ̂` the target network
    /// (`objectives::expectile_loss` on tensors: weight τ for u ≥ 0, 1 − τ for u < 0).
    fn losses(&self, ts: &[&Transition], target_net: &QNet) -> Result<(Tensor, Option<Tensor>)> {
        let b = batch(ts, &self.cfg)?;
        let y = Tensor::from_vec(self.targets(target_net, ts, &b)?, ts.len(), &Device::Cpu)?;
        let q_loss = (self.q_of(&b.x)? - &y)?.sqr()?.mean_all()?;
        if self.cfg.objective != Objective::Iql {
            return Ok((q_loss, None));
        }
        let u = (target_net.q_of(&b.x)?.detach() - self.v_of(&b.s)?)?;
        let tau = self.cfg.tau as f64;
        let w = u.lt(0.0)?.to_dtype(DType::F32)?.affine(1.0 - 2.0 * tau, tau)?;
        Ok((q_loss, Some((w * u.sqr()?)?.mean_all()?)))
    }

    /// Trains on `train` for `epochs` full-batch AdamW steps, then reports on `val`.
    ///
    /// Deviation from IQL's (and Digi-Q's) soft update `θ̂ ← (1−α)θ̂ + αθ`, α = 0.005 after every
    /// step: the target network is a copy of the online one, refreshed every `target_every`
    /// steps. kaizen trains full-batch for 50–500 steps, where α = 0.005 would leave the target
    /// near its random initialisation for most of training; a periodic copy is the other
    /// standard form of the same lag (DQN's).
    pub fn fit(
        &mut self,
        train: &[Transition],
        val: &[Transition],
        epochs: usize,
        lr: f64,
        target_every: usize,
        on_epoch: &mut dyn FnMut(usize, f64),
    ) -> Result<Report> {
        if train.is_empty() {
            return Err(QError::Input("no training transitions".into()));
        }
        let refs: Vec<&Transition> = train.iter().collect();
        let mut opt = candle_nn::AdamW::new(
            self.vars.all_vars(),
            candle_nn::ParamsAdamW { lr, weight_decay: 1e-4, ..Default::default() },
        )?;
        let mut target = self.copy()?;
        let mut last = 0.0;
        for epoch in 0..epochs {
            if epoch % target_every.max(1) == 0 {
                target = self.copy()?;
            }
            let loss = self.loss(&refs, &target)?;
            opt.backward_step(&loss)?;
            last = loss.to_scalar::<f32>()? as f64;
            on_epoch(epoch, last);
        }
        let mut report = Report { train_loss: last, ..Default::default() };
        if !val.is_empty() {
            let vrefs: Vec<&Transition> = val.iter().collect();
            report.val_loss = self.loss(&vrefs, &self.copy()?)?.to_scalar::<f32>()? as f64;
            let b = batch(&vrefs, &self.cfg)?;
            let q: Vec<f32> = self.q_of(&b.x)?.to_vec1()?;
            let labels: Vec<bool> = val.iter().map(|t| t.success).collect();
            report.val_auc = crate::metrics::auc(&q, &labels);
            let mut groups: std::collections::BTreeMap<&str, Vec<(f32, bool)>> = Default::default();
            for (t, &score) in val.iter().zip(&q) {
                groups.entry(&t.state_key).or_default().push((score, t.success));
            }
            let groups: Vec<Vec<(f32, bool)>> = groups.into_values().collect();
            report.val_top1 = crate::metrics::top1_accuracy(&groups);
            report.val_top1_groups = crate::metrics::mixed_groups(&groups).len();
        }
        Ok(report)
    }
}

#[cfg(test)]
#[path = "qnet_tests.rs"]
mod tests;
