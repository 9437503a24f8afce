//! Images a model looks at: decoding with limits (a corrupt or oversized picture is an error,
//! never a panic), the pure pixel operations (`ops`), and the image tools an episode calls on
//! its picture — `crop`, `zoom`, `rotate` (`ImageTools`) — each answering with the new image.

pub mod ops;
mod tools;

pub use ops::PixelBox;
pub use tools::{ImageTools, IMAGE_TOOLS};

/// Decoding and encoding live in `kaizen_core::image` (the model runtime reads pictures too).
pub use kaizen_core::image::{decode, decode_url, png_url, MAX_IMAGE_BYTES, MAX_SIDE};

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
