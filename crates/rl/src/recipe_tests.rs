//! Unit tests of `recipe` (kept in their own file beside it).

use super::*;

#[test]
fn defaults_fill_missing_fields_and_errors_name_the_field() {
    let r = Recipe::parse("env = \"arith:1\"\n[rl]\nsteps = 3\n").unwrap();
    assert_eq!((r.env.as_str(), r.rl.steps, r.rl.group), ("arith:1", 3, 4));
    let e = Recipe::parse("[rl]\nestimator = \"ppo\"\n").unwrap_err();
    assert!(e.contains("rl.estimator") && e.contains("grpo, dr_grpo, adpo, axpo"), "{e}");
    let e = Recipe::parse("[rl]\ngropu = 8\n").unwrap_err();
    assert!(e.contains("gropu") && e.contains("group"), "{e}");
    let e = Recipe::parse("[rl]\ngroup = 1\n").unwrap_err();
    assert!(e.contains("rl.group"), "{e}");
    let e = Recipe::parse("[policy]\nwidth = 60\nheads = 8\n").unwrap_err();
    assert!(e.contains("policy.width"), "{e}");
    let e = Recipe::parse("[rl]\neps_high = 1.5\n").unwrap_err();
    assert!(e.contains("rl.eps_high"), "{e}");
    let e = Recipe::parse("[sft]\ntarget_pass = 1.5\n").unwrap_err();
    assert!(e.contains("sft.target_pass") && e.contains("[0, 1]"), "{e}");
    // Agent0-VL's coefficients: the paper's defaults, checked, a misspelt one named.
    let r = Recipe::parse("[rl]\nestimator = \"process\"\n[rl.process]\ntau_c = 0.6\n").unwrap();
    assert_eq!((r.rl.process.tau_c, r.rl.process.kappa, r.rl.process.c_repair), (0.6, 5.0, 0.05));
    assert_eq!((r.rl.process.lambda_tool, r.rl.process.gamma, r.rl.process.alpha_out), (0.3, 0.99, 1.0));
    let e = Recipe::parse("[rl.process]\nverifier_max_tokens_per_turn = 0\n").unwrap_err();
    assert!(e.contains("rl.process"), "{e}");
    let e = Recipe::parse("[rl.process]\ntau_c = 1.5\n").unwrap_err();
    assert!(e.contains("rl.process") && e.contains("tau_c"), "{e}");
    let e = Recipe::parse("[rl.process]\ntauc = 0.5\n").unwrap_err();
    assert!(e.contains("tauc"), "{e}");
}

#[test]
fn pretrained_policies_train_through_lora_and_bad_lora_fields_are_named() {
    let r =
        Recipe::parse("shots = 2\n[policy]\nmodel = \"smollm2\"\n[policy.lora]\nrank = 4\ntargets = [\"attn_q\"]\n")
            .unwrap();
    assert_eq!(r.shots, 2);
    let lora = r.policy.lora.as_ref().unwrap();
    assert_eq!((lora.rank, lora.alpha, lora.targets.as_slice()), (4, 16.0, ["attn_q".to_string()].as_slice()));
    let e = Recipe::parse("[policy]\nmodel = \"smollm2\"\n").unwrap_err();
    assert!(e.contains("policy.lora"), "{e}");
    let e = Recipe::parse("[policy]\nmodel = \"smollm2\"\n[policy.lora]\ntargets = [\"attn\"]\n").unwrap_err();
    assert!(e.contains("policy.lora.targets") && e.contains("attn_output"), "{e}");
    let e = Recipe::parse("[policy]\nmodel = \"smollm2\"\n[policy.lora]\nrank = 0\n").unwrap_err();
    assert!(e.contains("policy.lora.rank"), "{e}");
    let e = Recipe::parse("[policy]\nmodel = \"gpt-5\"\n[policy.lora]\n").unwrap_err();
    assert!(e.contains("policy.model") && e.contains("tiny"), "{e}");
    let e = Recipe::parse("[policy.lora]\nrank = 4\n").unwrap_err();
    assert!(e.contains("policy.lora") && e.contains("tiny"), "{e}");
    let e = Recipe::parse("[policy]\nmodel = \"smollm2\"\nprev_token = true\n[policy.lora]\n").unwrap_err();
    assert!(e.contains("policy.prev_token") && e.contains("tiny"), "{e}");
    let e = Recipe::parse("[policy.lora]\nrnak = 4\n").unwrap_err();
    assert!(e.contains("rnak") && e.contains("rank"), "{e}");
}

#[test]
fn every_shipped_recipe_loads_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        // `agent0-*` recipes are for `kaizen evolve` (kaizen-evolve tests them).
        let evolve = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("agent0-"));
        if path.extension().is_some_and(|e| e == "toml") && !evolve {
            let r = Recipe::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            r.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "found {n} recipes in {}", dir.display());
    let tiny = Recipe::load(&dir.join("arith-tiny-grpo.toml")).unwrap();
    assert!(!tiny.tool_schemas && tiny.seed == 1);
}

#[test]
fn the_rl_section_gives_its_rollouts_episode_settings() {
    // RL's own defaults (it must sample): 3 turns of 96 tokens at temperature 1, budget 288.
    let e = Recipe::default().rl.episode();
    assert_eq!((e.max_turns, e.max_tokens_per_turn, e.max_episode_tokens(), e.temperature), (3, 96, 288, 1.0));
    let r = Recipe::parse("[rl]\nmax_turns = 2\nmax_tokens_per_turn = 10\ntemperature = 0.5\n").unwrap();
    let c = r.rl.episode().config(Vec::new(), r.tool_schemas, false);
    assert_eq!((c.max_turns, c.max_tokens_per_turn, c.max_episode_tokens, c.temperature), (2, 10, 20, 0.5));
}
