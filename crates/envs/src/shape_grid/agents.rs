//! Reference agents for `shape-grid`, as `Policy`s that read only what a model reads (the
//! question and the pictures in the chat) and write tool calls as text. Both name a cell's
//! shape from its pixels by one rule (`shape_of`); they differ in what pixels they read:
//! `Glance` the 8×8 pixels the cell has in the picture the task shows, `Zoomer` the cell at full
//! size after one `crop` call. Their accuracies are the env's two ceilings for this rule —
//! without and with the image tools.

use super::{CELL, GRID};
use image::RgbImage;
use kaizen_core::tool_call::format_call;
use kaizen_core::{ChatRequest, Completion, FinishReason, Message, Policy, PolicyError, Role};
use kaizen_tools::image::{decode_url, ops, PixelBox};
use serde_json::json;

/// The shape in `cell` (one shape on a plain background), by how much of its bounding box it
/// fills: a rectangle fills it all, a circle π/4 ≈ 0.79, a triangle ½. The background is the
/// colour of the top-left pixel; a pixel is the shape's where any channel differs from it by
/// more than 48.
pub fn shape_of(cell: &RgbImage) -> &'static str {
    let Some(&bg) = cell.get_pixel_checked(0, 0) else { return "rectangle" };
    let is_shape = |x: u32, y: u32| {
        let p = cell.get_pixel(x, y);
        (0..3).any(|c| (p[c] as i32 - bg[c] as i32).abs() > 48)
    };
    let (mut x0, mut y0, mut x1, mut y1, mut n) = (u32::MAX, u32::MAX, 0, 0, 0u32);
    for y in 0..cell.height() {
        for x in 0..cell.width() {
            if is_shape(x, y) {
                (x0, y0, x1, y1, n) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y), n + 1);
            }
        }
    }
    if n == 0 {
        return "rectangle";
    }
    let fill = n as f64 / ((x1 - x0 + 1) * (y1 - y0 + 1)) as f64;
    if fill > 0.9 {
        "rectangle"
    } else if fill > 0.65 {
        "circle"
    } else {
        "triangle"
    }
}

/// The task's turn: the last user message (worked examples before it are other tasks').
fn task_turn(messages: &[Message]) -> Option<(usize, &Message)> {
    messages.iter().enumerate().rev().find(|(_, m)| m.role == Role::User)
}

/// The row and column (1-based, each 1 to `GRID`) the question asks about.
fn asked_cell(messages: &[Message]) -> Option<(u32, u32)> {
    let q = task_turn(messages)?.1.content.as_str();
    let after = |key: &str| -> Option<u32> {
        let rest = &q[q.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok().filter(|v| (1..=GRID).contains(v))
    };
    Some((after("row ")?, after("column ")?))
}

fn reply(text: String) -> Result<Vec<Completion>, PolicyError> {
    Ok(vec![Completion {
        text,
        token_ids: vec![],
        logprobs: vec![],
        finish_reason: FinishReason::Stop,
        prompt_tokens: 0,
    }])
}

fn answer(shape: &str) -> Result<Vec<Completion>, PolicyError> {
    reply(answer_text(shape))
}

/// How the reference agents name a shape (the final turn).
pub fn answer_text(shape: &str) -> String {
    format!("The shape is a {shape}. \\boxed{{{shape}}}")
}

/// The zoomer's first turn: crop the cell in `row`, `col` (1-based) at full size (0 reads as 1).
pub fn crop_turn(row: u32, col: u32) -> String {
    let (row, col) = (row.max(1), col.max(1));
    let bx = [(col - 1) * CELL, (row - 1) * CELL, col * CELL, row * CELL];
    format!("Let me look at row {row}, column {col}. {}", format_call("crop", &json!({"box": bx})))
}

fn bad(what: &str) -> PolicyError {
    PolicyError::InvalidRequest(format!("shape-grid agent: {what}"))
}

/// Names the shape from the task's own picture: the asked cell's block of it.
pub struct Glance;

impl Policy for Glance {
    fn name(&self) -> &str {
        "glance"
    }
    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        let (row, col) = asked_cell(&req.messages).ok_or_else(|| bad("no row and column (1 to 3) in the question"))?;
        let url = task_turn(&req.messages).and_then(|(_, m)| m.images.first());
        let picture = decode_url(url.ok_or_else(|| bad("the task shows no picture"))?).map_err(|e| bad(&e))?;
        let side = picture.width() / GRID;
        if side == 0 {
            return Err(bad("the picture is too small to hold a 3×3 grid"));
        }
        let b = PixelBox { x0: (col - 1) * side, y0: (row - 1) * side, x1: col * side, y1: row * side };
        if b.x1 > picture.width() || b.y1 > picture.height() {
            return Err(bad("the asked cell is outside the picture"));
        }
        answer(shape_of(&ops::crop(&picture, b)))
    }
}

/// Names the shape of the task's own picture (`shape-cell`: one cell at full size).
pub struct Reader;

impl Policy for Reader {
    fn name(&self) -> &str {
        "reader"
    }
    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        let url = task_turn(&req.messages).and_then(|(_, m)| m.images.first());
        answer(shape_of(&decode_url(url.ok_or_else(|| bad("the task shows no picture"))?).map_err(|e| bad(&e))?))
    }
}

/// Crops the asked cell at full size, then names its shape from the crop.
pub struct Zoomer;

impl Policy for Zoomer {
    fn name(&self) -> &str {
        "zoomer"
    }
    fn chat(&self, req: &ChatRequest) -> Result<Vec<Completion>, PolicyError> {
        // A picture a tool showed after the task's own turn (not a worked example's).
        let (task, _) = task_turn(&req.messages).ok_or_else(|| bad("no task in the chat"))?;
        let shown = req.messages[task..].iter().rev().find(|m| m.role == Role::Tool).and_then(|m| m.images.first());
        if let Some(url) = shown {
            return answer(shape_of(&decode_url(url).map_err(|e| bad(&e))?));
        }
        let (row, col) = asked_cell(&req.messages).ok_or_else(|| bad("no row and column (1 to 3) in the question"))?;
        reply(crop_turn(row, col))
    }
}
