//! Pictures as decoder inputs. A picture becomes `patches()` input rows of the decoder through
//! a ViT stem (Dosovitskiy et al. 2021, "An image is worth 16×16 words"): resized to
//! `side × side`, cut into `patch × patch` squares, each flattened and projected linearly with a
//! learned position embedding,
//!
//! `e_j = W · p_j + b + pos_j`,  `p_j ∈ [−1, 1]^(patch·patch·3)` (RGB, row-major, channel last).
//!
//! Deviation from a "small ViT encoder", named: there are no encoder blocks of its own. The
//! decoder's blocks read the patch rows directly, as Fuyu does (Bavishi et al. 2023, "Fuyu-8B:
//! a multimodal architecture for AI agents"): one stack to train and to run, the patches
//! attended with the text under the same causal mask, and one set of kernels for both. Unlike
//! Fuyu, patches carry a learned position table (as ViT's) instead of row-break tokens, and
//! every picture is resized to one square size (a 192×64 crop is squashed 3:1), so the number
//! of rows per picture is fixed.
//!
//! Where a picture goes: the chat template shows each picture of a message as `patches()`
//! copies of the placeholder token `<|image|>` before the message's text (`with_placeholders`),
//! and the k-th run of placeholders in a token sequence takes the k-th picture of its list, row
//! for row (`splice`). Every forward that meets placeholders needs exactly as many picture rows
//! as it has placeholders, or it fails: a picture is never dropped, shifted or reused silently.
//! The model never writes a placeholder: its logit is masked (`IMAGE_LOGIT`) in training and in
//! inference alike, so the two give the same log-probs.

use crate::arch::gguf::{GgufError, GgufFile};
use candle_core::quantized::gguf_file::Value;
use candle_core::{Device, Result, Tensor};
use kaizen_core::Message;

/// The placeholder token's text.
pub const IMAGE_TOKEN: &str = "<|image|>";
/// The patch projection `W` `[width, patch·patch·3]`, its bias `b` `[width]`, and the position
/// table `[patches, width]`.
pub const PATCH_EMBD: &str = "v.patch_embd.weight";
pub const PATCH_BIAS: &str = "v.patch_embd.bias";
pub const POSITION_EMBD: &str = "v.position_embd.weight";
/// The placeholder's logit offset: `exp(−1e9)` is 0 in f32, so it is never sampled and its
/// probability mass is 0, while entropies (`p · log p`) stay finite.
pub const IMAGE_LOGIT: f32 = -1e9;

const KEY_SIDE: &str = "kaizen.vision.image_size";
const KEY_PATCH: &str = "kaizen.vision.patch_size";
const KEY_TOKEN: &str = "kaizen.vision.image_token_id";

/// A vision input's sizes and its placeholder token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VisionConfig {
    /// Pictures are resized to `side × side` pixels.
    pub side: usize,
    /// Side of one patch; `side` is a multiple of it.
    pub patch: usize,
    /// The placeholder token's id.
    pub image_token: u32,
}

impl VisionConfig {
    /// Input rows (placeholder tokens) per picture: `(side / patch)²`.
    pub fn patches(&self) -> usize {
        (self.side / self.patch.max(1)).pow(2)
    }

    /// Values per patch: `patch² · 3`.
    pub fn patch_values(&self) -> usize {
        self.patch * self.patch * 3
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.patch == 0 || self.side == 0 || self.side % self.patch != 0 {
            return Err(format!(
                "the picture side ({}) must be a multiple of the patch side ({})",
                self.side, self.patch
            ));
        }
        if self.side > 1024 {
            return Err(format!("a picture side of {} is over the limit of 1024", self.side));
        }
        Ok(())
    }

    /// The weights' GGUF names and shapes for a decoder of `width`.
    pub fn shapes(&self, width: usize) -> Vec<(String, Vec<usize>)> {
        vec![
            (PATCH_EMBD.into(), vec![width, self.patch_values()]),
            (PATCH_BIAS.into(), vec![width]),
            (POSITION_EMBD.into(), vec![self.patches(), width]),
        ]
    }

    pub fn metadata(&self) -> Vec<(String, Value)> {
        vec![
            (KEY_SIDE.into(), Value::U32(self.side as u32)),
            (KEY_PATCH.into(), Value::U32(self.patch as u32)),
            (KEY_TOKEN.into(), Value::U32(self.image_token)),
        ]
    }

    /// The vision input a GGUF file declares (`None`: a text model).
    pub fn from_gguf(g: &GgufFile) -> std::result::Result<Option<Self>, GgufError> {
        if !g.metadata().contains_key(KEY_SIDE) {
            return Ok(None);
        }
        let cfg = VisionConfig {
            side: g.get_u32(KEY_SIDE)? as usize,
            patch: g.get_u32(KEY_PATCH)? as usize,
            image_token: g.get_u32(KEY_TOKEN)?,
        };
        cfg.validate().map_err(|reason| GgufError::Corrupt { path: g.path.clone(), reason })?;
        Ok(Some(cfg))
    }

    /// Refuses `placeholders` placeholder tokens for `pictures` pictures unless they are
    /// exactly those pictures' rows: every picture shown, none left over.
    pub fn check_shown(&self, placeholders: usize, pictures: usize) -> std::result::Result<(), String> {
        if placeholders == pictures * self.patches() {
            Ok(())
        } else {
            Err(format!("{placeholders} picture placeholders for {pictures} pictures of {} patches", self.patches()))
        }
    }

    /// The placeholder text of one picture.
    pub fn placeholder_text(&self) -> String {
        IMAGE_TOKEN.repeat(self.patches())
    }

    /// The picture of a `data:` URL as its patch rows `[patches, patch_values]`, flattened:
    /// decoded (with `kaizen_core::image`'s limits), resized to `side × side` (triangle filter;
    /// a picture of that size is used as it is), values `v / 127.5 − 1`.
    pub fn patch_pixels(&self, url: &str) -> std::result::Result<Vec<f32>, String> {
        let mut img = kaizen_core::image::decode_url(url)?;
        let side = self.side as u32;
        if img.dimensions() != (side, side) {
            img = image::imageops::resize(&img, side, side, image::imageops::FilterType::Triangle);
        }
        let (p, per_row) = (self.patch, self.side / self.patch);
        let mut out = Vec::with_capacity(self.patches() * self.patch_values());
        for pr in 0..per_row {
            for pc in 0..per_row {
                for y in 0..p {
                    for x in 0..p {
                        let px = img.get_pixel((pc * p + x) as u32, (pr * p + y) as u32);
                        out.extend(px.0.iter().map(|&v| f32::from(v) / 127.5 - 1.0));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The patch rows of `pictures` in order, `[k · patches, patch_values]`.
    pub fn pixel_rows(&self, pictures: &[String], device: &Device) -> std::result::Result<Tensor, String> {
        let mut all = Vec::with_capacity(pictures.len() * self.patches() * self.patch_values());
        for (i, url) in pictures.iter().enumerate() {
            all.extend(self.patch_pixels(url).map_err(|e| format!("picture {i}: {e}"))?);
        }
        Tensor::from_vec(all, (pictures.len() * self.patches(), self.patch_values()), device).map_err(|e| e.to_string())
    }

    /// Each message with its pictures written into its text as placeholder runs, before the
    /// text (pictures first, as Qwen2-VL's template puts them), pictures removed.
    pub fn with_placeholders(&self, messages: &[Message]) -> Vec<Message> {
        messages
            .iter()
            .map(|m| match m.images.len() {
                0 => m.clone(),
                k => Message {
                    content: format!("{}{}", self.placeholder_text().repeat(k), m.content),
                    images: Vec::new(),
                    ..m.clone()
                },
            })
            .collect()
    }
}

/// Patch embeddings `e_j = W · p_j + b + pos_{j mod patches}` of pixel rows `[k · patches,
/// values]` (k pictures, each `patches` rows): `[k · patches, width]`. Differentiable in
/// every weight.
pub fn embed_patches(pixels: &Tensor, w: &Tensor, b: &Tensor, pos: &Tensor) -> Result<Tensor> {
    let (rows, _) = pixels.dims2()?;
    let (n, width) = pos.dims2()?;
    if n == 0 || rows % n != 0 {
        candle_core::bail!("{rows} patch rows are not whole pictures of {n} patches");
    }
    pixels.matmul(&w.t()?)?.reshape((rows / n, n, width))?.broadcast_add(pos)?.broadcast_add(b)?.reshape((rows, width))
}

/// Input rows `x` `[N, width]` with the rows at `positions` (increasing) replaced, in order, by
/// the rows of `pictures` `[positions.len(), width]` — a gather from `[x; pictures]`, so the
/// gradient reaches both.
pub fn splice(x: &Tensor, positions: &[usize], pictures: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    if pictures.dim(0)? != positions.len() {
        candle_core::bail!("{} placeholders but {} picture rows", positions.len(), pictures.dim(0)?);
    }
    let mut index: Vec<u32> = (0..n as u32).collect();
    for (k, &p) in positions.iter().enumerate() {
        if p >= n {
            candle_core::bail!("placeholder position {p} outside {n} rows");
        }
        index[p] = (n + k) as u32;
    }
    let index = Tensor::new(index.as_slice(), x.device())?;
    Tensor::cat(&[x, pictures], 0)?.index_select(&index, 0)
}

/// Input rows `x` `[N, width]` of the flattened ids `flat` with the placeholders' rows replaced
/// by `pictures` (`splice`); an error when there are placeholders and no pictures.
pub fn show_pictures(x: Tensor, flat: &Tensor, image_token: u32, pictures: Option<&Tensor>) -> Result<Tensor> {
    let at = placeholder_positions(&flat.to_vec1::<u32>()?, image_token);
    match pictures {
        Some(p) => splice(&x, &at, p),
        None if !at.is_empty() => candle_core::bail!("{} picture placeholders but no pictures", at.len()),
        None => Ok(x),
    }
}

/// The positions of `token` in `ids`.
pub fn placeholder_positions(ids: &[u32], token: u32) -> Vec<usize> {
    ids.iter().enumerate().filter(|(_, &t)| t == token).map(|(i, _)| i).collect()
}

/// The logit offsets `[vocab]`: 0, and `IMAGE_LOGIT` at the placeholder.
pub fn logit_mask(vocab: usize, image_token: u32, device: &Device) -> Result<Tensor> {
    let mut m = vec![0f32; vocab];
    if let Some(v) = m.get_mut(image_token as usize) {
        *v = IMAGE_LOGIT;
    }
    Tensor::from_vec(m, vocab, device)
}

#[cfg(test)]
#[path = "vision_tests.rs"]
mod tests;
