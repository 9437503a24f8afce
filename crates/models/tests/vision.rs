//! A vision model end to end on pictures this test draws: the trainable model written to GGUF
//! and loaded by the runtime, placeholders placed by the chat template, the runtime's sampled
//! log-probs replayed exactly across turns that show new pictures, and the training forward
//! giving the runtime's numbers.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use image::{Rgb, RgbImage};
use kaizen_core::image::png_url;
use kaizen_core::{Message, SamplingParams};
use kaizen_models::arch::vision::IMAGE_TOKEN;
use kaizen_models::trainable::{LmConfig, TrainableLm};
use kaizen_models::{LocalLlm, SequenceBatch, WeightFormat};

/// A picture of two halves: `left` and `right` colours.
fn picture(left: [u8; 3], right: [u8; 3]) -> String {
    png_url(&RgbImage::from_fn(16, 16, |x, _| Rgb(if x < 8 { left } else { right }))).unwrap()
}

/// A from-scratch vision model (8×8 pictures in 4×4 patches: 4 placeholders each) whose patch
/// projection is scaled up so that pictures move the logits clearly, and its runtime twin.
fn models(dir: &std::path::Path) -> (TrainableLm, LocalLlm) {
    let cfg = LmConfig::bytes(2, 32, 2, 512).with_vision(8, 4);
    let m = TrainableLm::new(cfg, &Device::Cpu, 3).unwrap();
    let vars = m.named_vars().unwrap();
    let w = vars.get("v.patch_embd.weight").unwrap();
    w.set(&(w.as_tensor() * 40.0).unwrap()).unwrap();
    let path = dir.join("tiny-vl.gguf");
    m.write_gguf(&path, GgmlDType::F32).unwrap();
    let llm = LocalLlm::load(&path, WeightFormat::F32).unwrap();
    (m, llm)
}

/// A fresh folder of this test's own.
fn scratch(name: &str) -> tempfile::TempDir {
    // Removed when the test ends, passed or failed.
    tempfile::Builder::new().prefix(&format!("kaizen-vision-{name}-")).tempdir().unwrap()
}

fn sample(batch: &mut SequenceBatch, ids: &[u32], seed: u64) -> kaizen_core::Completion {
    let params = SamplingParams { temperature: 1.0, max_tokens: 6, seed, ..Default::default() };
    let mut done = batch.start(0, ids, params, 0).unwrap();
    while done.is_none() {
        done = batch.step().unwrap().into_iter().next().map(|(_, c)| c);
    }
    done.unwrap()
}

#[test]
fn pictures_sit_where_the_template_puts_them_and_replay_exactly_across_turns() {
    let scratch = scratch("replay");
    let dir = scratch.path();
    let (trainable, llm) = models(&dir);
    let v = *llm.model.vision().expect("the GGUF file keeps the picture input");
    assert_eq!((v.side, v.patch, v.patches()), (8, 4, 4));
    let image_id = llm.tokenizer.encode(IMAGE_TOKEN).unwrap();
    assert_eq!(image_id, [v.image_token], "the placeholder is one token");

    let red_blue = picture([255, 0, 0], [0, 0, 255]);
    let task = Message { images: vec![red_blue.clone()], ..Message::user("Which colour is left?") };
    let prompt = llm.encode_chat(&[task.clone()], &[]).unwrap();
    let pictures = LocalLlm::vision_pictures(&[task]);
    // `<|im_start|>user\n`, then the picture's 4 placeholders, then the text.
    let header = llm.tokenizer.encode("<|im_start|>user\n").unwrap();
    assert_eq!(&prompt[header.len()..header.len() + 4], &[v.image_token; 4]);
    assert_ne!(prompt[header.len() + 4], v.image_token);
    assert_eq!(prompt.iter().filter(|&&t| t == v.image_token).count(), 4);

    // Three turns; after each of the first two, an observation shows a new picture (what a
    // crop tool returns), fed as one chunk with its placeholders.
    let mut batch = SequenceBatch::new(&llm, 1, 256);
    let (mut ids, mut mask, mut logprobs, mut shown) =
        (prompt.clone(), vec![0u8; prompt.len()], vec![0f32; prompt.len()], pictures);
    for (turn, colours) in
        [Some(([0, 255, 0], [255, 255, 0])), Some(([0, 0, 0], [255, 255, 255])), None].iter().enumerate()
    {
        batch.show(0, &shown);
        let c = sample(&mut batch, &ids, 11 + turn as u64);
        ids.extend(&c.token_ids);
        mask.extend(c.token_ids.iter().map(|_| 1u8));
        logprobs.extend(c.logprobs.iter().map(|t| t.logprob));
        if let Some((l, r)) = colours {
            let tool = Message { images: vec![picture(*l, *r)], ..Message::new(kaizen_core::Role::Tool, "the crop") };
            shown.extend(LocalLlm::vision_pictures(std::slice::from_ref(&tool)));
            let text = format!(
                "<|im_end|>\n<|im_start|>tool\n{}the crop<|im_end|>\n<|im_start|>assistant\n",
                v.placeholder_text()
            );
            let obs = llm.tokenizer.encode(&text).unwrap();
            ids.extend(&obs);
            mask.extend(obs.iter().map(|_| 0u8));
            logprobs.extend(obs.iter().map(|_| 0f32));
        }
    }
    assert_eq!(shown.len(), 3);
    assert_eq!(ids.iter().filter(|&&t| t == v.image_token).count(), 12);
    // The runtime replays its own samples bit for bit.
    let replay = llm.score_trajectory(&ids, &mask, 1.0, 0, &shown).unwrap();
    assert_eq!(replay, logprobs);
    // The training forward gives the same numbers (f32 weights; other kernels, so within
    // float rounding), and its gradient reaches the patch projection.
    let x = Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let lp = trainable.token_logprobs_shared(&x, 0, &[shown.clone()], 1.0).unwrap();
    let lp_rows = lp.squeeze(0).unwrap().to_vec1::<f32>().unwrap();
    let written: Vec<usize> = (1..ids.len()).filter(|&i| mask[i] == 1).collect();
    assert!(written.len() >= 3);
    for &i in &written {
        assert!(
            (lp_rows[i - 1] - logprobs[i]).abs() < 2e-3,
            "token {i}: trained {} sampled {}",
            lp_rows[i - 1],
            logprobs[i]
        );
    }
    let masked =
        Tensor::new((1..ids.len()).map(|i| f32::from(mask[i])).collect::<Vec<_>>().as_slice(), &Device::Cpu).unwrap();
    let loss = (lp.squeeze(0).unwrap() * masked).unwrap().sum_all().unwrap().neg().unwrap();
    let grads = loss.backward().unwrap();
    let vars = trainable.named_vars().unwrap();
    for name in ["v.patch_embd.weight", "v.patch_embd.bias", "v.position_embd.weight"] {
        let g = grads.get(vars[name].as_tensor()).expect(name);
        assert!(g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "{name} has no gradient");
    }

    // The pictures matter: the same tokens with the observations' pictures swapped score
    // differently; with a picture missing, scoring is refused (never silently shifted).
    let swapped = vec![shown[0].clone(), shown[2].clone(), shown[1].clone()];
    let other = llm.score_trajectory(&ids, &mask, 1.0, 0, &swapped).unwrap();
    let moved = written.iter().map(|&i| (other[i] - replay[i]).abs()).fold(0f32, f32::max);
    assert!(moved > 1e-3, "pictures did not change the log-probs ({moved})");
    assert!(llm.score_trajectory(&ids, &mask, 1.0, 0, &shown[..2]).is_err());
    assert!(trainable.token_logprobs_shared(&x, 0, &[shown[..2].to_vec()], 1.0).is_err());
}

#[test]
fn a_served_chat_reads_its_picture_and_a_bad_picture_is_an_error() {
    use kaizen_core::{ChatRequest, Policy};
    let scratch = scratch("chat");
    let dir = scratch.path();
    let (_, llm) = models(&dir);
    let ask = |img: String| ChatRequest {
        messages: vec![Message { images: vec![img], ..Message::user("colour?") }],
        tools: vec![],
        params: SamplingParams { temperature: 0.0, max_tokens: 4, ..Default::default() },
    };
    let a = llm.chat(&ask(picture([255, 0, 0], [255, 0, 0]))).unwrap();
    let b = llm.chat(&ask(picture([0, 0, 255], [0, 0, 255]))).unwrap();
    assert_ne!(a[0].logprobs[0].logprob, b[0].logprobs[0].logprob, "the picture reaches the model");
    let corrupt = kaizen_core::image::data_url("image/png", b"\x89PNG but not really");
    let err = llm.chat(&ask(corrupt)).unwrap_err().to_string();
    assert!(err.contains("picture 0"), "{err}");
    // The placeholder's own text in a message would be a placeholder without a picture.
    let err = llm.encode_chat(&[Message::user(format!("look: {IMAGE_TOKEN}"))], &[]).unwrap_err().to_string();
    assert!(err.contains("placeholder"), "{err}");
    // Pictures and placeholders must match in number, for every way in.
    let prompt = llm.encode_chat(&[Message::user("colour?")], &[]).unwrap();
    let params = SamplingParams { max_tokens: 2, ..Default::default() };
    let err = llm.generate_after(&prompt, 0, &[picture([0; 3], [0; 3])], &params, &mut |_| true).unwrap_err();
    assert!(err.to_string().contains("0 picture placeholders for 1 pictures"), "{err}");
}

#[test]
fn a_vision_model_round_trips_through_gguf_and_safetensors() {
    let scratch = scratch("round-trip");
    let dir = scratch.path();
    let (trainable, _) = models(&dir);
    let back = TrainableLm::load_gguf(&dir.join("tiny-vl.gguf"), &Device::Cpu).unwrap();
    assert_eq!(back.cfg, trainable.cfg);
    assert!(back.cfg.vision.is_some());
    let ids = |llm: &TrainableLm| {
        let v = llm.cfg.vision.unwrap();
        let mut ids: Vec<u32> = vec![2, 10, 11];
        ids.extend(std::iter::repeat_n(v.image_token, v.patches()));
        ids.extend([12, 13, 14]);
        Tensor::new(ids.as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap()
    };
    let shown = vec![vec![picture([10, 200, 30], [250, 250, 0])]];
    let a = trainable.token_logprobs_shared(&ids(&trainable), 0, &shown, 1.0).unwrap().to_vec2::<f32>().unwrap();
    let b = back.token_logprobs_shared(&ids(&back), 0, &shown, 1.0).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(a, b, "F32 GGUF keeps every weight");
    // The trainable weights as safetensors, into a fresh model of the same config.
    let path = dir.join("policy.safetensors");
    trainable.save_trainable(&path).unwrap();
    let fresh = TrainableLm::new(trainable.cfg, &Device::Cpu, 99).unwrap();
    let before = fresh.token_logprobs_shared(&ids(&fresh), 0, &shown, 1.0).unwrap().to_vec2::<f32>().unwrap();
    assert_ne!(before, a);
    fresh.load_trainable(&path).unwrap();
    let after = fresh.token_logprobs_shared(&ids(&fresh), 0, &shown, 1.0).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(after, a);
}

/// The picture path learns: a from-scratch model is trained to answer `r` after a reddish
/// picture and `b` after a bluish one (its text identical), then reads pictures of shades it
/// never saw. Before training it cannot (chance); if the gradient did not reach the patch
/// weights, or pictures were spliced at the wrong rows, it could not learn this at all.
#[test]
fn a_vision_model_learns_to_tell_pictures_apart() {
    use candle_nn::Optimizer;
    let cfg = LmConfig::bytes(1, 32, 2, 128).with_vision(8, 4);
    let m = TrainableLm::new(cfg, &Device::Cpu, 7).unwrap();
    let v = cfg.vision.unwrap();
    let (r, b) = (0x72u32 + 5, 0x62u32 + 5); // byte tokens of 'r' and 'b' (after the 5 specials)
    let seq = |answer: u32| {
        let mut ids = vec![2u32];
        ids.extend(std::iter::repeat_n(v.image_token, v.patches()));
        ids.extend([0x3f + 5, answer]);
        ids
    };
    let shade = |red: bool, k: u8| {
        if red {
            picture([150 + k, 20, 40], [200, k, 10])
        } else {
            picture([20, k, 150 + k], [k, 30, 220])
        }
    };
    let accuracy = |m: &TrainableLm| {
        let mut right = 0;
        for k in 0..10u8 {
            for red in [true, false] {
                let ids = Tensor::new(seq(r).as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
                let pics = vec![vec![shade(red, 3 + 10 * k)]];
                let logits = m.token_logprobs_shared(&ids, 0, &pics, 1.0).unwrap();
                // log π(r | …) at the last position, against log π(b | …) from the same prefix.
                let lr = logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap()[v.patches() + 1];
                let ids_b = Tensor::new(seq(b).as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
                let lb = m
                    .token_logprobs_shared(&ids_b, 0, &pics, 1.0)
                    .unwrap()
                    .squeeze(0)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()[v.patches() + 1];
                right += usize::from((lr > lb) == red);
            }
        }
        right
    };
    let before = accuracy(&m);
    let vars: Vec<candle_core::Var> = m.named_vars().unwrap().into_values().collect();
    let mut opt = candle_nn::AdamW::new(vars, candle_nn::ParamsAdamW { lr: 1e-2, ..Default::default() }).unwrap();
    for step in 0..60u8 {
        let red = step % 2 == 0;
        let ids = Tensor::new(seq(if red { r } else { b }).as_slice(), &Device::Cpu).unwrap().unsqueeze(0).unwrap();
        // Even shades in training, odd ones (3, 13, …, 93) in `accuracy`: none seen twice.
        let pics = vec![vec![shade(red, step.wrapping_mul(37) % 50 * 2)]];
        let lp = m.token_logprobs_shared(&ids, 0, &pics, 1.0).unwrap();
        let loss = lp.narrow(1, v.patches() + 1, 1).unwrap().sum_all().unwrap().neg().unwrap();
        opt.backward_step(&loss).unwrap();
    }
    let after = accuracy(&m);
    assert!(before <= 14 && after == 20, "right before {before}/20, after {after}/20");
}

/// Rows of one training batch, each with its own picture, after a shared text prefix: each row
/// scores as it does alone, and the pictures are not exchanged between rows.
#[test]
fn each_row_of_a_batch_shows_its_own_picture() {
    let scratch = scratch("rows");
    let dir = scratch.path();
    let (m, _) = models(&dir);
    let v = m.cfg.vision.unwrap();
    let row = |text: [u32; 3]| {
        let mut ids = vec![2u32, 20, 21, 22, 23];
        ids.extend(std::iter::repeat_n(v.image_token, v.patches()));
        ids.extend(text);
        ids
    };
    let (a, b) = (row([30, 31, 32]), row([40, 41, 42]));
    let (pa, pb) = (vec![picture([255, 0, 0], [0, 0, 255])], vec![picture([0, 255, 0], [0, 0, 0])]);
    let t = |rows: &[&Vec<u32>]| {
        let flat: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), a.len()), &Device::Cpu).unwrap()
    };
    let lp = |x: &Tensor, shared: usize, p: &[Vec<String>]| -> Vec<Vec<f32>> {
        m.token_logprobs_shared(x, shared, p, 1.0).unwrap().to_vec2::<f32>().unwrap()
    };
    // `shared` 4: the rows share their first 4 tokens (the prefix stops before the pictures).
    let batch = lp(&t(&[&a, &b]), 4, &[pa.clone(), pb.clone()]);
    let (alone_a, alone_b) = (lp(&t(&[&a]), 0, &[pa.clone()]), lp(&t(&[&b]), 0, &[pb.clone()]));
    for j in 3..a.len() - 1 {
        assert!((batch[0][j] - alone_a[0][j]).abs() < 1e-4, "row 0, entry {j}");
        assert!((batch[1][j] - alone_b[0][j]).abs() < 1e-4, "row 1, entry {j}");
    }
    // `shared` past the pictures, as a batch whose rows share their placeholder ids would
    // compute it: the shared part stops at the first placeholder, and nothing changes.
    let clamped = lp(&t(&[&a, &b]), 5 + v.patches(), &[pa.clone(), pb.clone()]);
    for j in 4..a.len() - 1 {
        assert!((clamped[0][j] - alone_a[0][j]).abs() < 1e-4, "row 0, entry {j}, shared past the picture");
        assert!((clamped[1][j] - alone_b[0][j]).abs() < 1e-4, "row 1, entry {j}, shared past the picture");
    }
    let crossed = lp(&t(&[&a, &b]), 4, &[pb, pa]);
    let moved = (3..a.len() - 1).map(|j| (crossed[0][j] - batch[0][j]).abs()).fold(0f32, f32::max);
    assert!(moved > 1e-3, "row 0 did not see its own picture ({moved})");
}
