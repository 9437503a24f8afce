//! What a Q-function reads of a state's pictures: a thumbnail of the latest one. This is the
//! documented alternative to the policy's pooled hidden states (METHODS.md §1 reads a VLM's own
//! features): a fixed, exact encoding — the picture resized to `side × side` (triangle filter),
//! each RGB value `v / 127.5 − 1`, row by row — that reads the same whatever policy proposed
//! the actions, so a Q-function trained on one policy's logs scores another's. The Q-head's
//! MLP learns what to make of it. A state without a picture reads as zeros.

use kaizen_core::{Message, Role};
use kaizen_models::arch::vision::VisionConfig;

/// The thumbnail side `kaizen q train` uses when the logged episodes show pictures.
pub const DEFAULT_SIDE: usize = 16;

/// Values a thumbnail of `side` has.
pub fn len(side: usize) -> usize {
    3 * side * side
}

/// The thumbnail of `picture` (a `data:` URL), or zeros for none; a picture that does not
/// decode is an error naming why.
pub fn thumbnail(picture: Option<&str>, side: usize) -> Result<Vec<f32>, String> {
    match picture {
        None => Ok(vec![0.0; len(side)]),
        // One patch the size of the picture: the vision input's own resize and scaling.
        Some(url) => VisionConfig { side, patch: side, image_token: 0 }.patch_pixels(url),
    }
}

/// The latest picture of a state: the last one shown from the task's turn (the last user
/// turn) on — the task's own, or one a tool returned since. Worked examples before the task
/// are not the state (as in `state::state_of`; `state::wire_state` picks the same from a chat
/// in OpenAI's wire form).
pub fn latest_picture(messages: &[Message]) -> Option<&str> {
    let task = messages.iter().rposition(|m| m.role == Role::User)?;
    messages[task..].iter().rev().find_map(|m| m.images.last()).map(String::as_str)
}

#[cfg(test)]
#[path = "picture_tests.rs"]
mod tests;
