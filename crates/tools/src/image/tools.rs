//! The image tools of one episode: `crop`, `zoom` and `rotate` on the episode's picture at full
//! resolution, each answering with the new image (a PNG) as the observation's picture.
//! Arguments are checked; a bad box or angle is an error observation (counted like every failed
//! call), never a panic.

use super::ops::{self, PixelBox};
use super::png_url;
use image::RgbImage;
use kaizen_core::{Observation, ToolCall, ToolSpec};
use serde_json::{json, Value};

/// The names of the image tools.
pub const IMAGE_TOOLS: [&str; 3] = ["crop", "zoom", "rotate"];

/// The widest (and tallest) picture a tool returns: a zoom past it is refused.
pub const MAX_OUTPUT_SIDE: u32 = 1024;

/// The image tools over one picture. Every call reads the original picture (calls do not
/// compose: a crop of a crop is a smaller crop of the picture).
pub struct ImageTools {
    picture: RgbImage,
}

impl ImageTools {
    pub fn new(picture: RgbImage) -> Self {
        ImageTools { picture }
    }

    pub fn picture(&self) -> &RgbImage {
        &self.picture
    }

    /// The tools' schemas, with the picture's size in their descriptions.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let (w, h) = self.picture.dimensions();
        let bx = json!({"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
            "description": format!("[x0, y0, x1, y1] in pixels of the {w}×{h} picture, ends exclusive")});
        vec![
            ToolSpec::function(
                "crop",
                &format!("Shows a box of the {w}×{h} picture at full resolution."),
                json!({"type": "object", "properties": {"box": bx}, "required": ["box"]}),
            ),
            ToolSpec::function(
                "zoom",
                &format!("Shows a box of the {w}×{h} picture enlarged `factor` times (2 to 8)."),
                json!({"type": "object", "properties": {"box": bx,
                    "factor": {"type": "integer", "minimum": 2, "maximum": 8}}, "required": ["box", "factor"]}),
            ),
            ToolSpec::function(
                "rotate",
                "Shows the picture turned counter-clockwise by a multiple of 90 degrees.",
                json!({"type": "object", "properties": {"degrees": {"type": "integer", "enum": [90, 180, 270]}},
                    "required": ["degrees"]}),
            ),
        ]
    }

    /// Runs one call of `crop`, `zoom` or `rotate`.
    pub fn act(&self, call: &ToolCall) -> Observation {
        let start = std::time::Instant::now();
        let shown = self.image_of(call).and_then(|(what, image)| Ok((what, image.dimensions(), png_url(&image)?)));
        let mut obs = match shown {
            Ok((what, (w, h), url)) => {
                Observation { images: vec![url], ..Observation::ok(format!("{what}: {w}×{h} pixels, shown.")) }
            }
            Err(e) => Observation::error(format!("{}: {e}", call.name)),
        };
        obs.elapsed_ms = start.elapsed().as_secs_f64() * 1e3;
        obs
    }

    fn image_of(&self, call: &ToolCall) -> Result<(String, RgbImage), String> {
        let (w, h) = self.picture.dimensions();
        let arg = |k: &str| call.arguments.get(k).cloned().unwrap_or(Value::Null);
        match call.name.as_str() {
            "crop" => {
                let b = PixelBox::parse(&arg("box"), w, h)?;
                Ok((format!("crop {}", arg("box")), ops::crop(&self.picture, b)))
            }
            "zoom" => {
                let b = PixelBox::parse(&arg("box"), w, h)?;
                let factor = arg("factor")
                    .as_u64()
                    .filter(|f| (2..=8).contains(f))
                    .ok_or_else(|| format!("factor must be an integer from 2 to 8, got {}", arg("factor")))?
                    as u32;
                if b.width() * factor > MAX_OUTPUT_SIDE || b.height() * factor > MAX_OUTPUT_SIDE {
                    return Err(format!(
                        "a {}×{} box zoomed {factor} times is over {MAX_OUTPUT_SIDE} pixels a side; take a smaller box or factor",
                        b.width(),
                        b.height()
                    ));
                }
                Ok((format!("zoom {} ×{factor}", arg("box")), ops::zoom(&self.picture, b, factor)))
            }
            "rotate" => {
                let d = arg("degrees")
                    .as_i64()
                    .ok_or_else(|| format!("degrees must be an integer, got {}", arg("degrees")))?;
                Ok((format!("rotate {d}°"), ops::rotate(&self.picture, d)?))
            }
            other => Err(format!("unknown image tool '{other}' (known: crop, zoom, rotate)")),
        }
    }
}
