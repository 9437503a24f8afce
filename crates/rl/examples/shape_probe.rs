//! Can the tiny decoder's picture input read a shape? The picture path alone, without the
//! episode around it: a from-scratch vision model is trained to name the shape of shape-grid
//! crops (the asked cell at full size, as the crop tool returns it) in one token after the
//! picture's placeholder rows, then scored on crops of held-out scenes (`shape-grid:test`).
//! Prints the training loss and the held-out accuracy as it goes (chance: 33%).
//!
//! `cargo run --release -p kaizen-rl --example shape_probe -- WIDTH STEPS LR SIDE PATCH BATCH PREV`
//! e.g. `… -- 128 1000 3e-3 24 4 16 1` (PREV: 1 with the previous-token table, 0 without).
//! Needs the easy-vqa data of `scripts/setup.sh`.

use candle_core::{Device, Tensor};
use candle_nn::Optimizer;
use kaizen_core::{Env, ToolCall};
use kaizen_models::trainable::{LmConfig, TrainableLm};

const SHAPES: [&str; 3] = ["circle", "rectangle", "triangle"];

/// `n` (crop, shape) pairs of the asked cells of `spec`'s scenes.
fn crops(spec: &str, seed: u64, n: usize) -> Result<Vec<(String, String)>, String> {
    let env = kaizen_envs::ShapeGrid::open(spec)?;
    env.tasks(seed, n)
        .into_iter()
        .map(|t| {
            let at = |k: &str| t.meta[k].as_u64().map(|v| v as u32).ok_or(format!("task {} has no {k}", t.id));
            let (r, c) = (at("row")?, at("col")?);
            let mut s = env.open_session(&t).ok_or("no session")??;
            let args = serde_json::json!({"box": [(c - 1) * 64, (r - 1) * 64, c * 64, r * 64]});
            let o = s.act(&ToolCall { id: String::new(), name: "crop".into(), arguments: args });
            let pic = o.images.first().cloned().ok_or(format!("crop of {} showed no picture: {}", t.id, o.content))?;
            Ok((pic, t.answer.clone()))
        })
        .collect()
}

fn arg<T: std::str::FromStr>(i: usize, default: T) -> T {
    std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let (width, steps, lr) = (arg(1, 128usize), arg(2, 300usize), arg(3, 1e-3f64));
    let (side, patch, bs, prev) = (arg(4, 24usize), arg(5, 4usize), arg(6, 16usize), arg(7, 1u8) == 1);
    let train = crops("shape-grid", 1, 1024).map_err(anyhow::Error::msg)?;
    let test = crops("shape-grid:test", 2, 200).map_err(anyhow::Error::msg)?;
    let cfg = LmConfig { prev_token: prev, ..LmConfig::bytes(2, width, 8, 128) }.with_vision(side, patch);
    let v = cfg.vision.ok_or_else(|| anyhow::anyhow!("no vision config"))?;
    let m = TrainableLm::new(cfg, &Device::Cpu, 1)?;
    // The shape's first byte as its token ('c', 'r', 't'; byte tokens follow 5 specials).
    let seq = |shape: &str| {
        let mut ids = vec![2u32];
        ids.extend(std::iter::repeat_n(v.image_token, v.patches()));
        ids.extend([u32::from(b'?') + 5, u32::from(shape.as_bytes()[0]) + 5]);
        ids
    };
    let answer_at = v.patches() + 1;
    let accuracy = |m: &TrainableLm| -> anyhow::Result<f64> {
        let mut right = 0;
        for (pic, shape) in &test {
            let mut scores = Vec::new();
            for s in SHAPES {
                let ids = Tensor::new(seq(s).as_slice(), &Device::Cpu)?.unsqueeze(0)?;
                scores.push(
                    m.token_logprobs_shared(&ids, 0, &[vec![pic.clone()]], 1.0)?.squeeze(0)?.to_vec1::<f32>()?
                        [answer_at],
                );
            }
            let best = (0..3).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap_or(0);
            right += usize::from(SHAPES[best] == shape);
        }
        Ok(right as f64 / test.len() as f64)
    };
    let vars: Vec<candle_core::Var> = m.named_vars()?.into_values().collect();
    let mut opt = candle_nn::AdamW::new(vars, candle_nn::ParamsAdamW { lr, weight_decay: 0.0, ..Default::default() })?;
    let start = std::time::Instant::now();
    for step in 0..steps {
        let batch: Vec<&(String, String)> = (0..bs).map(|k| &train[(step * bs + k) % train.len()]).collect();
        let ids: Vec<u32> = batch.iter().flat_map(|(_, s)| seq(s)).collect();
        let x = Tensor::from_vec(ids, (bs, v.patches() + 3), &Device::Cpu)?;
        let pics: Vec<Vec<String>> = batch.iter().map(|(p, _)| vec![p.clone()]).collect();
        let loss = m.token_logprobs_shared(&x, 0, &pics, 1.0)?.narrow(1, answer_at, 1)?.mean_all()?.neg()?;
        opt.backward_step(&loss)?;
        if (step + 1) % (steps / 6).max(1) == 0 || step + 1 == steps {
            println!(
                "step {:>5}  loss {:.3}  held-out accuracy {:.3}  ({:.0} s)",
                step + 1,
                loss.to_scalar::<f32>()?,
                accuracy(&m)?,
                start.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
