//! Unit tests of `trainer`'s pure parts (kept in their own file beside it); the loop itself is
//! tested end to end in `crates/cli/tests/cli.rs`.

use super::sft::reached;
use super::*;
use crate::estimator::tests::answered;
use crate::recipe::RlSection;

#[test]
fn sft_stops_once_a_check_reaches_the_target_pass_rate() {
    assert!(reached(0.25, 0.25) && reached(0.5, 0.25));
    assert!(!reached(0.24, 0.25));
    // 0 turns the target off, whatever the pass rate.
    assert!(!reached(1.0, 0.0));
}

#[test]
fn tiny_policies_have_previous_token_embeddings_unless_turned_off() {
    let small = "[policy]\nlayers = 1\nwidth = 16\nheads = 2\ncontext = 32\n";
    let on = initial_policy(&Recipe::parse(small).unwrap()).unwrap();
    assert!(on.cfg.prev_token);
    let off = initial_policy(&Recipe::parse(&format!("{small}prev_token = false\n")).unwrap()).unwrap();
    assert!(!off.cfg.prev_token);
    assert_eq!(on.cfg.parameters() - off.cfg.parameters(), (on.cfg.vocab + 1) * 16);
}

/// The PPO stage trains on per-token advantages as given: before the first update the ratio
/// is exactly 1 (the old log-probs are the training model's own), so the token-mean loss is
/// `−Σ_t w·Â_t·m_t / Σ_t m_t`, with the importance weight `w` at its cap 2 (the behaviour
/// log-probs, −1e9, are far below the model's). Mask 0 1 1 1, Â = 9, 1, 2, 3: the masked-out 9
/// does not count, loss = −2·(1 + 2 + 3)/3 = −4. The same rollout with the sequence advantage
/// 2 gives −2·2 = −4 too, and with per-token 0, 0, 0, 6 gives −2·6/3 = −4: three rows, one loss.
#[test]
fn the_ppo_update_trains_on_per_token_advantages() {
    use crate::estimator::{Advantage, TrainRow};
    let dev = Device::Cpu;
    let rl = RlSection { minibatch: 1, ..RlSection::default() };
    let ppo =
        PpoConfig { eps_low: 0.2, eps_high: 0.4, beta: 0.0, normalisation: crate::loss::Normalisation::TokenMean };
    let mut t = answered(serde_json::Value::Null, "7", 1.0);
    t.token_ids = vec![10, 20, 30, 40];
    t.loss_mask = vec![0, 1, 1, 1];
    t.logprobs = vec![-1e9; 4];
    let mut norms = Vec::new();
    for adv in [
        Advantage::PerToken(vec![9.0, 1.0, 2.0, 3.0]),
        Advantage::Sequence(2.0),
        Advantage::PerToken(vec![0.0, 0.0, 0.0, 6.0]),
    ] {
        let policy = TrainableLm::new(LmConfig::bytes(1, 16, 2, 32), &dev, 7).unwrap();
        let mut opt = AdamW::new(&policy.named_vars().unwrap(), AdamWConfig::default()).unwrap();
        let rows = [TrainRow { t: 0, mask: None, adv: adv.clone(), eps: 0.4 }];
        let s = ppo::update(&policy, None, &mut opt, &[&t], &rows, &rl, &ppo).unwrap();
        assert!((s.loss + 4.0).abs() < 1e-4, "{adv:?}: loss {}", s.loss);
        assert!(s.grad_norm > 0.0 && opt.step == 1, "{adv:?}: no update ran");
        assert_eq!(s.tis_capped, 1.0, "every weight at the cap");
        norms.push(s.grad_norm);
    }
    // Same loss, different credit per token: the gradients differ, so a per-token row is not
    // collapsed into its masked mean (which would make all three rows the same update).
    assert!((norms[0] - norms[1]).abs() > 1e-6 && (norms[2] - norms[1]).abs() > 1e-6, "{norms:?}");
    // A per-token advantage of another length is an error naming the rollout, not a panic.
    let policy = TrainableLm::new(LmConfig::bytes(1, 16, 2, 32), &dev, 7).unwrap();
    let mut opt = AdamW::new(&policy.named_vars().unwrap(), AdamWConfig::default()).unwrap();
    let rows = [TrainRow { t: 0, mask: None, adv: Advantage::PerToken(vec![1.0; 3]), eps: 0.4 }];
    let e = ppo::update(&policy, None, &mut opt, &[&t], &rows, &rl, &ppo).unwrap_err().to_string();
    assert!(e.contains("per-token advantage of 3 tokens") && e.contains(&t.episode_id), "{e}");
}

/// The verifier's cold start leaves out a worked verification with a turn longer than the
/// verifier may write (they once were, and the verifier learnt to be cut off).
#[test]
fn a_demonstration_fits_when_every_turn_is_within_the_limit() {
    let mut t: Trajectory = serde_json::from_value(serde_json::json!({
        "schema_version": 1, "episode_id": "e", "env": "arith", "policy": "p", "seed": 0,
        "task": {"id": "t", "prompt": "p", "answer": "7", "checker": {"kind": "numeric"}},
        "turns": [{"text": "a", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 5},
                  {"text": "b", "tool_calls": [], "malformed": [], "observations": [], "generated_tokens": 9}],
        "token_ids": [], "loss_mask": [], "logprobs": [], "prompt_tokens": 0, "final_answer": "7",
        "reward": 1.0, "end": {"kind": "answered"},
        "timing": {"generation_ms": 0.0, "tool_ms": 0.0, "total_ms": 0.0}
    }))
    .unwrap();
    assert!(super::sft::fits(&t, 9));
    assert!(!super::sft::fits(&t, 8));
    t.turns.truncate(1);
    assert!(super::sft::fits(&t, 8));
}
