//! A local vision policy on `shape-grid` (a from-scratch model with a picture input, written
//! and loaded as GGUF): the pictures hop from the task and from two tool calls into the token
//! record bit-identically, survive the run directory, and an episode sampled after the two
//! tool-returned pictures replays to its stored log-probs.

use kaizen_core::image::content_hash;
use kaizen_core::tool_call::format_call;
use kaizen_core::{Env, EpisodeEnd};
use kaizen_envs::shape_grid::agents::{answer_text, crop_turn};
use kaizen_envs::ShapeGrid;
use kaizen_models::trainable::{LmConfig, TrainableLm};
use kaizen_models::{LocalLlm, WeightFormat};
use kaizen_rollout::{demonstration, run_dir, run_local, EpisodeConfig, Job, RunDir};
use kaizen_tools::ToolRegistry;
use std::sync::Arc;

fn scratch(name: &str) -> tempfile::TempDir {
    // Removed when the test ends, passed or failed.
    tempfile::Builder::new().prefix(&format!("kaizen-vision-episodes-{name}-")).tempdir().unwrap()
}

/// 24×24 pictures in 4×4 patches (36 placeholders each), the patch projection scaled up so
/// pictures move the log-probs clearly.
fn tiny_vl(dir: &std::path::Path) -> LocalLlm {
    let m = TrainableLm::new(LmConfig::bytes(2, 32, 2, 2048).with_vision(24, 4), &candle_core::Device::Cpu, 5).unwrap();
    let vars = m.named_vars().unwrap();
    let w = vars.get("v.patch_embd.weight").unwrap();
    w.set(&(w.as_tensor() * 40.0).unwrap()).unwrap();
    let path = dir.join("tiny-vl.gguf");
    m.write_gguf(&path, candle_core::quantized::GgmlDType::F32).unwrap();
    LocalLlm::load(&path, WeightFormat::F32).unwrap()
}

#[test]
fn pictures_hop_bit_identically_and_an_episode_after_two_tool_pictures_replays_exactly() {
    let scratch = scratch("hop");
    let dir = scratch.path();
    let llm = tiny_vl(&dir);
    let env = ShapeGrid::open("shape-grid:test").expect("run scripts/setup.sh (it installs easy-vqa)");
    let tools = ToolRegistry::standard();
    let cfg = EpisodeConfig {
        temperature: 1.0,
        max_turns: 4,
        max_tokens_per_turn: 8,
        tool_schemas: false,
        ..Default::default()
    };
    let task = env.tasks(5, 1).remove(0);
    let (row, col) = (task.meta["row"].as_u64().unwrap() as u32, task.meta["col"].as_u64().unwrap() as u32);
    // Two tool calls, two tool-returned pictures: the asked cell, then the whole first row.
    let turns = vec![
        crop_turn(row, col),
        format!("And the top row. {}", format_call("crop", &serde_json::json!({"box": [0, 0, 192, 64]}))),
        answer_text(&task.answer),
    ];
    let demo = demonstration(&llm, &env, &tools, Job::new(task.clone(), 1, "demo"), &turns, &cfg);
    assert!(matches!(demo.end, EpisodeEnd::Answered), "{:?}", demo.end);
    assert_eq!(demo.reward, 1.0);

    // Hop by hop, the same picture bytes: task → token record; tool → observation → token record.
    let shown = &demo.token_pictures;
    assert_eq!(shown.len(), 3);
    assert_eq!(content_hash(&shown[0]), content_hash(&task.images[0]));
    for k in 0..2 {
        let returned = &demo.turns[k].observations[0].images;
        assert_eq!(returned.len(), 1, "turn {k}: {:?}", demo.turns[k].observations[0].content);
        assert_eq!(content_hash(&shown[k + 1]), content_hash(&returned[0]));
    }
    let sizes: Vec<(u32, u32)> =
        shown.iter().map(|u| kaizen_core::image::decode_url(u).unwrap().dimensions()).collect();
    assert_eq!(sizes, [(24, 24), (64, 64), (192, 64)]);
    let image_token = llm.model.vision().unwrap().image_token;
    assert_eq!(demo.token_ids.iter().filter(|&&t| t == image_token).count(), 3 * 36);

    // Through the run directory (each picture stored once by hash) and back: the same bytes.
    let run = dir.join("run");
    let mut rd = RunDir::create(&run, &serde_json::json!({})).unwrap();
    rd.append(&demo).unwrap();
    let loaded = run_dir::load(&run).unwrap().remove(0);
    assert_eq!(loaded.token_pictures, demo.token_pictures);
    assert_eq!(std::fs::read_dir(run.join("images")).unwrap().count(), 3);

    // Sample the last turn after the two tool pictures (the first two turns replayed from the
    // loaded record), then replay the whole episode: the sampled tokens score back exactly.
    let third = (loaded.prompt_tokens..loaded.token_ids.len())
        .filter(|&i| loaded.loss_mask[i] == 1 && loaded.loss_mask[i - 1] == 0)
        .nth(2)
        .unwrap();
    let mut out = Vec::new();
    let jobs = (0..2).map(|k| Job::continuing(Arc::new(loaded.clone()), third, 70 + k, format!("c{k}")));
    run_local(&llm, &env, &tools, jobs, &cfg, 2, &mut |t| out.push(t));
    assert_eq!(out.len(), 2);
    for c in &out {
        assert!(!matches!(c.end, EpisodeEnd::Error { .. }), "{:?}", c.end);
        assert_eq!(c.token_ids[..third], demo.token_ids[..third]);
        assert_eq!(c.token_pictures, demo.token_pictures);
        let sampled: Vec<usize> = (third..c.token_ids.len()).filter(|&i| c.loss_mask[i] == 1).collect();
        assert!(!sampled.is_empty());
        let scored =
            llm.score_trajectory(&c.token_ids, &c.loss_mask, 1.0, c.shared_prefix_tokens, &c.token_pictures).unwrap();
        // Within float rounding, not bit for bit: the continued episode fed its replayed
        // prefix as one chunk, while scoring splits it at every written token (a natively
        // sampled episode replays bit for bit: `models/tests/vision.rs`).
        for &i in &sampled {
            assert!((scored[i] - c.logprobs[i]).abs() < 1e-4, "token {i}: {} vs {}", scored[i], c.logprobs[i]);
        }
        // The pictures are read: with the second tool picture replaced by a plain one, the
        // same tokens score otherwise.
        let plain =
            kaizen_core::image::png_url(&image::RgbImage::from_pixel(192, 64, image::Rgb([255, 0, 0]))).unwrap();
        let other_pictures = vec![shown[0].clone(), shown[1].clone(), plain];
        let other =
            llm.score_trajectory(&c.token_ids, &c.loss_mask, 1.0, c.shared_prefix_tokens, &other_pictures).unwrap();
        let moved = sampled.iter().map(|&i| (other[i] - scored[i]).abs()).fold(0f32, f32::max);
        assert!(moved > 1e-3, "another picture moved the log-probs by {moved}");
    }
}
