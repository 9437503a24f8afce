//! Pure pixel operations on RGB images: crop, zoom (nearest-neighbour, exact), rotate by
//! quarter turns, and shrink (box-filter mean). No I/O, no randomness.

use image::{Rgb, RgbImage};
use serde_json::Value;

/// A box of pixels, `[x0, y0, x1, y1)`: columns x0..x1 and rows y0..y1 (ends exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl PixelBox {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// Reads `[x0, y0, x1, y1]` (numbers; fractions rounded to the nearest pixel) and checks it
    /// lies inside a `width`×`height` image with x0 < x1 and y0 < y1.
    pub fn parse(v: &Value, width: u32, height: u32) -> Result<PixelBox, String> {
        let nums: Option<Vec<f64>> = v.as_array().map(|a| a.iter().map(Value::as_f64).collect()).unwrap_or(None);
        let Some([x0, y0, x1, y1]) = nums.as_deref().and_then(|n| <[f64; 4]>::try_from(n).ok()) else {
            return Err(format!("box must be four numbers [x0, y0, x1, y1], got {v}"));
        };
        let inside = |a: f64, hi: u32| a.is_finite() && a.round() >= 0.0 && a.round() <= hi as f64;
        if !(inside(x0, width) && inside(x1, width) && inside(y0, height) && inside(y1, height)) {
            return Err(format!("box {v} is outside the {width}×{height} image (x in 0..={width}, y in 0..={height})"));
        }
        let b = PixelBox { x0: x0.round() as u32, y0: y0.round() as u32, x1: x1.round() as u32, y1: y1.round() as u32 };
        if b.x0 >= b.x1 || b.y0 >= b.y1 {
            return Err(format!("box {v} is empty: it needs x0 < x1 and y0 < y1"));
        }
        Ok(b)
    }
}

/// The pixels of `b` (inside `image`, as `PixelBox::parse` checks).
pub fn crop(image: &RgbImage, b: PixelBox) -> RgbImage {
    RgbImage::from_fn(b.width(), b.height(), |x, y| *image.get_pixel(b.x0 + x, b.y0 + y))
}

/// `b` enlarged `factor` times, each source pixel a `factor`×`factor` block (nearest neighbour:
/// no new colours, so zoomed pixels are exactly the scene's).
pub fn zoom(image: &RgbImage, b: PixelBox, factor: u32) -> RgbImage {
    RgbImage::from_fn(b.width() * factor, b.height() * factor, |x, y| {
        *image.get_pixel(b.x0 + x / factor, b.y0 + y / factor)
    })
}

/// `image` turned `degrees` counter-clockwise; `degrees` a multiple of 90 (others: an error —
/// a quarter turn is exact, any other angle would resample).
pub fn rotate(image: &RgbImage, degrees: i64) -> Result<RgbImage, String> {
    if degrees % 90 != 0 {
        return Err(format!("rotate turns by multiples of 90 degrees, got {degrees}"));
    }
    Ok(match degrees.rem_euclid(360) {
        0 => image.clone(),
        90 => image::imageops::rotate270(image),
        180 => image::imageops::rotate180(image),
        _ => image::imageops::rotate90(image),
    })
}

/// `image` made `factor` times smaller on each side by the mean of each `factor`×`factor` block
/// (rounded half up); a partial block at the edge is dropped.
pub fn shrink(image: &RgbImage, factor: u32) -> RgbImage {
    let n = (factor * factor) as u32;
    RgbImage::from_fn(image.width() / factor, image.height() / factor, |x, y| {
        let mut sum = [0u32; 3];
        for dy in 0..factor {
            for dx in 0..factor {
                let p = image.get_pixel(x * factor + dx, y * factor + dy);
                for c in 0..3 {
                    sum[c] += p[c] as u32;
                }
            }
        }
        Rgb(sum.map(|s| ((s + n / 2) / n) as u8))
    })
}
