//! The SFT cold start end to end: demonstrations of the `arith` env made token-exact by the
//! episode runner, a tiny policy trained on them, and the trained policy — handed to the
//! inference runtime as a GGUF file — calling the calculator in a real episode.

use candle_core::quantized::GgmlDType;
use candle_core::Device;
use candle_nn::Optimizer;
use kaizen_core::Env;
use kaizen_envs::Arith;
use kaizen_models::trainable::{LmConfig, TrainableLm};
use kaizen_models::{LocalLlm, WeightFormat};
use kaizen_rl::{sft_loss, TokenBatch};
use kaizen_rollout::{demonstration, run_episode, Agent, EpisodeConfig, Job};
use kaizen_tools::ToolRegistry;

#[test]
fn sft_on_demonstrations_teaches_the_tool_call_format() {
    kaizen_models::tune_allocator();
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-sft-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.gguf");
    let dev = Device::Cpu;
    let model = TrainableLm::new(LmConfig::bytes(2, 64, 4, 2048), &dev, 0).unwrap();
    model.write_gguf(&path, GgmlDType::F32).unwrap();
    let llm = LocalLlm::load(&path, WeightFormat::F32).unwrap();

    let env = Arith::level(2).unwrap();
    let tools = ToolRegistry::standard();
    let cfg = EpisodeConfig::default();
    let demos: Vec<_> = env
        .tasks(0, 2)
        .into_iter()
        .enumerate()
        .map(|(i, task)| {
            let turns = env.demonstration(&task).unwrap();
            demonstration(&llm, &env, &tools, Job::new(task, i as u64, format!("d{i}")), &turns, &cfg)
        })
        .collect();
    for d in &demos {
        // Tool call, calculator observation, boxed answer: reward 1.
        assert_eq!(d.reward, 1.0, "{:?}", d.turns);
        assert_eq!((d.turns.len(), d.tool_calls()), (2, 1));
        assert!(d.turns[0].observations[0].ok);
    }
    println!("demonstration length {} tokens ({} written)", demos[0].token_ids.len(), demos[0].generated_tokens());

    let seqs: Vec<(&[u32], &[u8])> = demos.iter().map(|d| (d.token_ids.as_slice(), d.loss_mask.as_slice())).collect();
    let batch = TokenBatch::new(&seqs, &[], 0, &dev).unwrap();
    let params = candle_nn::ParamsAdamW { lr: 5e-3, weight_decay: 0.0, ..Default::default() };
    let mut opt = candle_nn::AdamW::new(model.vars().all_vars(), params).unwrap();
    let loss = |m: &TrainableLm| {
        sft_loss(&m.token_logprobs_shared(&batch.ids, batch.shared, &batch.pictures, 1.0).unwrap(), &batch.mask)
            .unwrap()
    };
    let first = loss(&model).to_scalar::<f32>().unwrap();
    let mut last = first;
    for _ in 0..100 {
        let l = loss(&model);
        last = l.to_scalar::<f32>().unwrap();
        opt.backward_step(&l).unwrap();
    }
    println!("SFT loss {first:.3} → {last:.3}");
    assert!(first > 4.0 && last < 0.5, "{first} → {last}");

    // The trained policy, as a GGUF file, in a real greedy episode on a demonstrated task.
    model.write_gguf(&path, GgmlDType::F32).unwrap();
    let trained = LocalLlm::load(&path, WeightFormat::F32).unwrap();
    let task = &env.tasks(0, 1)[0];
    let cfg = EpisodeConfig { max_tokens_per_turn: 96, ..Default::default() };
    let t = run_episode(&Agent::Local(&trained), &env, &tools, task, &cfg, 0, "e");
    println!("{:?}", t.turns.iter().map(|u| &u.text).collect::<Vec<_>>());
    assert!(t.tool_calls() >= 1, "the trained policy should call the calculator: {:?}", t.turns[0].text);
}
