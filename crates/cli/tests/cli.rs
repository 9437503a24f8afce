//! Every `kaizen` verb end to end, as a user runs it, with the real models.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kaizen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kaizen")).args(args).output().expect("running kaizen")
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[test]
fn every_verb_has_help_with_an_example() {
    for verb in ["generate", "chat", "embed", "serve", "models", "tool", "run", "show", "train", "evolve", "compare"] {
        let o = kaizen(&[verb, "--help"]);
        assert!(o.status.success());
        assert!(text(&o.stdout).contains("Example"), "{verb} --help has no example");
    }
    for verb in [&["bench", "generate", "--help"][..], &["export", "verl", "--help"], &["eval-prm", "--help"]] {
        let o = kaizen(verb);
        assert!(text(&o.stdout).contains("Example"), "{verb:?} has no example");
    }
}

/// The verbs that run episodes take one set of episode flags with one set of defaults (greedy,
/// 4 turns of 256 tokens, the budget derived) — except the temperature of the verbs that
/// sample on purpose, which is 1.
#[test]
fn episode_verbs_share_one_set_of_flags_and_defaults() {
    let default_of = |help: &str, flag: &str| -> String {
        let at = help.find(flag).unwrap_or_else(|| panic!("no {flag} in\n{help}"));
        let rest = &help[at..];
        let d = rest.find("[default: ").unwrap();
        rest[d + 10..d + 10 + rest[d + 10..].find(']').unwrap()].to_string()
    };
    for (verb, temperature) in [("run", "0"), ("collect", "1"), ("eval-rerank", "1")] {
        let help = text(&kaizen(&[verb, "--help"]).stdout);
        assert_eq!(default_of(&help, "--max-turns"), "4", "{verb}");
        assert_eq!(default_of(&help, "--max-tokens-per-turn"), "256", "{verb}");
        assert_eq!(default_of(&help, "--max-episode-tokens"), "max-turns × max-tokens-per-turn", "{verb}");
        assert_eq!(default_of(&help, "--temperature"), temperature, "{verb}");
        for flag in ["--shots ", "--shots-from", "--no-tool-schemas"] {
            assert!(help.contains(flag), "{verb} has no {flag}");
        }
    }
}

#[test]
fn generate_json_gives_n_completions_with_logprobs() {
    let o = kaizen(&[
        "generate",
        "--prompt",
        "Name a fruit.",
        "--n",
        "3",
        "--temperature",
        "1",
        "--seed",
        "5",
        "--max-tokens",
        "8",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> = text(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    for c in &lines {
        let lps = c["logprobs"].as_array().unwrap();
        assert_eq!(lps.len(), c["token_ids"].as_array().unwrap().len());
        assert!(lps.iter().all(|t| t["logprob"].as_f64().unwrap() <= 0.0));
    }
    // Same seed, same output.
    let again = kaizen(&[
        "generate",
        "--prompt",
        "Name a fruit.",
        "--n",
        "3",
        "--temperature",
        "1",
        "--seed",
        "5",
        "--max-tokens",
        "8",
        "--json",
    ]);
    assert_eq!(o.stdout, again.stdout);
}

#[test]
fn generate_streams_and_prints_a_summary_table() {
    let o = kaizen(&["generate", "--prompt", "Say hi.", "--max-tokens", "6", "--top-logprobs", "2"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("alternatives"));
    assert!(text(&o.stderr).contains("sum logprob"));
}

#[test]
fn bad_input_gives_clear_errors() {
    let dir = temp_dir("bad-input");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, [b'h', b'i', 0xff, 0xfe]).unwrap();
    let o = kaizen(&["generate", "--prompt-file", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("not valid UTF-8"), "{}", text(&o.stderr));

    let o = kaizen(&["generate", "--prompt", "x", "--top-p", "0"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("top_p"), "{}", text(&o.stderr));

    let o = kaizen(&["generate", "--prompt", &"word ".repeat(9000), "--max-tokens", "2"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("context window"), "{}", text(&o.stderr));

    // A KAIZEN_HOME without models: the error names the set-up command.
    let o = Command::new(env!("CARGO_BIN_EXE_kaizen"))
        .args(["generate", "--prompt", "x"])
        .env("KAIZEN_HOME", &dir)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("scripts/setup.sh"), "{}", text(&o.stderr));
    let o = kaizen(&["generate", "--policy", "openai:ftp://x", "--prompt", "x"]);
    assert!(text(&o.stderr).contains("http://"), "{}", text(&o.stderr));
}

#[test]
fn chat_reads_turns_from_stdin_and_keeps_history() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaizen"))
        .args(["chat", "--max-tokens", "8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Hello!\nWhat did I just say?\n/reset\n/exit\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().filter(|l| !l.trim().is_empty()).count(), 2, "two replies: {}", text(&o.stdout));
    assert!(text(&o.stderr).contains("history cleared"));
}

#[test]
fn embed_similarity_and_models_listing() {
    let o = kaizen(&["embed", "--similarity", "The weather is lovely today.", "It's so sunny outside!"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("0.6660"), "{}", text(&o.stdout));
    let o = kaizen(&["models", "--verify"]);
    assert!(o.status.success());
    let out = text(&o.stdout);
    assert_eq!(out.matches("verified").count(), 4, "{out}");
}

#[test]
fn tool_runs_one_call_as_an_episode_would() {
    let o = kaizen(&["tool", "python", "--args", r#"{"code": "print(17*23)"}"#]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout).trim(), "391");
    let o = kaizen(&["tool", "calculator", "--args", r#"{"expr": "(17*23 + 4) / 5"}"#, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((v["content"].as_str(), v["ok"].as_bool()), (Some("79"), Some(true)));
    // Errors are observations with a non-zero exit: unknown tool, bad arguments, bad JSON.
    let o = kaizen(&["tool", "nope"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stdout).contains("unknown tool 'nope'"));
    let o = kaizen(&["tool", "python", "--args", r#"{"src": 1}"#]);
    assert_eq!(o.status.code(), Some(2));
    let o = kaizen(&["tool", "python", "--args", "{not json"]);
    assert!(text(&o.stderr).contains("not valid JSON"));
    let o = kaizen(&["tool", "--list"]);
    assert!(text(&o.stdout).contains("\"calculator\""));
}

#[test]
fn image_tools_crop_zoom_and_rotate_a_picture_file() {
    let dir = temp_dir("image-tool");
    std::fs::create_dir_all(&dir).unwrap();
    // Pixel (x, y) of a 40×30 picture is (6x, 8y, x + y).
    let picture = image::RgbImage::from_fn(40, 30, |x, y| image::Rgb([(6 * x) as u8, (8 * y) as u8, (x + y) as u8]));
    picture.save(dir.join("p.png")).unwrap();
    let (p, out) = (dir.join("p.png"), dir.join("out.png"));
    let tool = |name: &str, args: &str| {
        kaizen(&["tool", name, "--image", p.to_str().unwrap(), "--args", args, "--save", out.to_str().unwrap()])
    };
    let o = tool("zoom", r#"{"box": [10, 5, 14, 8], "factor": 3}"#);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("12×9 pixels"), "{}", text(&o.stdout));
    let zoomed = image::open(&out).unwrap().to_rgb8();
    // Zoomed pixel (7, 4) is source pixel (10 + 7/3, 5 + 4/3) = (12, 6): (72, 48, 18).
    assert_eq!((zoomed.dimensions(), zoomed.get_pixel(7, 4).0), ((12, 9), [72, 48, 18]));
    let o = tool("rotate", r#"{"degrees": 90}"#);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A quarter turn counter-clockwise: the top-right pixel (39, 0) goes to the top left.
    let turned = image::open(&out).unwrap().to_rgb8();
    assert_eq!((turned.dimensions(), turned.get_pixel(0, 0).0), ((30, 40), [234, 0, 39]));
    // A box outside the picture is an error observation, exit 2; no picture, a clear error.
    let o = tool("crop", r#"{"box": [0, 0, 41, 5]}"#);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stdout).contains("outside the 40×30 image"), "{}", text(&o.stdout));
    let o = kaizen(&["tool", "crop", "--args", r#"{"box": [0, 0, 4, 4]}"#]);
    assert!(!o.status.success() && text(&o.stderr).contains("--image"), "{}", text(&o.stderr));
    std::fs::write(&p, b"not a picture").unwrap();
    let o = tool("crop", r#"{"box": [0, 0, 4, 4]}"#);
    assert!(!o.status.success() && text(&o.stderr).contains("not an image"), "{}", text(&o.stderr));
}

/// `shape-grid` on held-out scenes: the reference agent that reads the small picture it is
/// shown against the one that crops the asked cell first — the same pixel rule, so the gap is
/// what the crop tool is worth — and the pictures kept once each in the run directory.
#[test]
fn shape_grid_needs_the_crop_tool_and_keeps_each_picture_once() {
    let run = |policy: &str| {
        let out = temp_dir(&format!("shape-grid-{policy}"));
        let o = kaizen(&[
            "run",
            "--env",
            "shape-grid:test",
            "--policy",
            policy,
            "--episodes",
            "100",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        (out, summary["success_rate"].as_f64().unwrap(), summary["tool_use_rate"].as_f64().unwrap())
    };
    let (_, glance, glance_tools) = run("glance");
    let (out, zoomer, zoomer_tools) = run("zoomer");
    assert_eq!((glance_tools, zoomer_tools), (0.0, 1.0));
    assert!(glance < 0.65 && zoomer > 0.95, "without the crop {glance}, with it {zoomer}");
    // 100 scenes and 100 crops, each a file named by its hash; the lines hold no picture bytes.
    let lines = std::fs::read_to_string(out.join("trajectories.jsonl")).unwrap();
    assert!(!lines.contains("data:image"));
    // Exactly one file per distinct picture the lines name: 100 scenes, and crops that only
    // repeat when two scenes show the same easy-VQA picture in the asked cell.
    let named: std::collections::HashSet<&str> =
        lines.split('"').filter(|w| w.starts_with("images/") && w.ends_with(".png")).collect();
    let files = std::fs::read_dir(out.join("images")).unwrap().count();
    assert!(named.len() > 100, "{} distinct pictures named", named.len());
    assert_eq!(files, named.len(), "a picture stored twice, or one missing");
    let o = kaizen(&["show", out.to_str().unwrap(), "--episode", "0"]);
    let shown = text(&o.stdout);
    assert!(o.status.success() && shown.contains("crop"), "{}", text(&o.stderr));
    // The scene as shown (24×24) after the question; the crop (64×64) under the tool's answer.
    assert!(shown.contains("[picture 24×24 sha256:") && shown.contains("    [picture 64×64 sha256:"), "{shown}");
    // A local text model is refused with what to use instead.
    let o = kaizen(&[
        "run",
        "--env",
        "shape-grid",
        "--episodes",
        "1",
        "--out",
        temp_dir("shape-grid-text").to_str().unwrap(),
    ]);
    assert!(!o.status.success() && text(&o.stderr).contains("local models read text only"), "{}", text(&o.stderr));
}

/// A tiny vision policy end to end: `kaizen train` with `[policy.vision]` (a few SFT steps on
/// the zoomer's demonstrations, one GRPO step with the crop tool), then `kaizen run` of its
/// `policy.gguf` on held-out scenes, whose records list the pictures its placeholders showed.
#[test]
fn a_tiny_vision_policy_trains_and_runs_on_shape_grid() {
    let dir = temp_dir("tiny-vl");
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("vl.toml");
    std::fs::write(
        &recipe,
        "env = \"shape-grid\"\ntool_schemas = false\n[policy]\nlayers = 1\nwidth = 32\nheads = 2\ncontext = 1024\n\
         [policy.vision]\nside = 24\npatch = 4\n[sft]\nsteps = 4\nbatch = 2\ndemonstrations = 8\n\
         [[sft.mix]]\nenv = \"shape-cell\"\ndemonstrations = 3\n\
         [rl]\nsteps = 1\ntasks_per_step = 2\ngroup = 2\nminibatch = 4\nmax_turns = 2\nmax_tokens_per_turn = 160\n\
         [eval]\ntasks = 2\nsamples = 1\n",
    )
    .unwrap();
    let out = dir.join("run");
    let o = kaizen(&["train", recipe.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"phase\":\"sft\"") && metrics.contains("\"phase\":\"rl\""), "{metrics}");
    assert!(out.join("sft.gguf").is_file(), "the SFT policy is kept beside policy.gguf");
    // SFT drew on both envs: the scenes' demonstrations and the mixed single pictures.
    let sources: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sft_sources.json")).unwrap()).unwrap();
    assert_eq!(
        sources,
        serde_json::json!([{"env": "shape-grid", "demonstrations": 8}, {"env": "shape-cell", "demonstrations": 3}])
    );
    // The rollouts of the RL step showed the scene: every record lists its pictures.
    let rollouts = kaizen_rollout::run_dir::load(&out).unwrap();
    assert!(!rollouts.is_empty() && rollouts.iter().all(|t| !t.token_pictures.is_empty()));
    let test = dir.join("test");
    let o = kaizen(&[
        "run",
        "--env",
        "shape-grid:test",
        "--policy",
        out.join("policy.gguf").to_str().unwrap(),
        "--no-tool-schemas",
        "--episodes",
        "2",
        "--max-tokens-per-turn",
        "16",
        "--out",
        test.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ts = kaizen_rollout::run_dir::load(&test).unwrap();
    assert_eq!(ts.len(), 2);
    for t in &ts {
        assert!(!matches!(t.end, kaizen_core::EpisodeEnd::Error { .. }), "{:?}", t.end);
        assert_eq!(t.token_pictures[0], t.task.images[0]);
    }

    // Best-of-Q on pictures: episodes of the glance agent (right on about half) train a
    // Q-function that also reads each state's picture; eval-rerank runs the vision policy's
    // candidates through it.
    let logged = dir.join("logged");
    let o = kaizen(&[
        "run",
        "--env",
        "shape-grid",
        "--policy",
        "glance",
        "--episodes",
        "24",
        "--candidates",
        "2",
        "--select",
        "random",
        "--seed",
        "3",
        "--out",
        logged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let q = dir.join("q.safetensors");
    let o = kaizen(&["q", "train", logged.to_str().unwrap(), "--epochs", "20", "--out", q.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("16×16 thumbnail"), "{}", text(&o.stderr));
    let cfg = kaizen_q::qnet::QNet::config_of(&q).unwrap();
    assert_eq!(cfg.picture_side, 16);
    // The vision policy's candidates, scored by it: every step's candidates carry a Q score
    // (a scorer that failed would leave none: the runner falls back to the log-prob).
    let reranked = dir.join("reranked");
    let o = kaizen(&[
        "run",
        "--env",
        "shape-grid:test",
        "--policy",
        out.join("policy.gguf").to_str().unwrap(),
        "--rerank",
        q.to_str().unwrap(),
        "--candidates",
        "2",
        "--temperature",
        "1.0",
        "--episodes",
        "2",
        "--max-turns",
        "2",
        "--max-tokens-per-turn",
        "16",
        "--no-tool-schemas",
        "--out",
        reranked.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let steps: Vec<kaizen_core::Turn> =
        kaizen_rollout::run_dir::load(&reranked).unwrap().into_iter().flat_map(|t| t.turns).collect();
    assert!(!steps.is_empty());
    assert!(steps.iter().all(|u| !u.candidates.is_empty() && u.candidates.iter().all(|c| c.score.is_some())));
    let o = kaizen(&[
        "eval-rerank",
        "--env",
        "shape-grid:test",
        "--policy",
        out.join("policy.gguf").to_str().unwrap(),
        "--q",
        q.to_str().unwrap(),
        "--candidates",
        "2",
        "--episodes",
        "2",
        "--max-turns",
        "2",
        "--max-tokens-per-turn",
        "16",
        "--no-tool-schemas",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Best-of-Q"), "{}", text(&o.stdout));
}

/// A fresh folder for one test, removed when the test ends, passed or failed: the runs write
/// models and logs of up to a GiB, and a suite run again and again must not fill the disk.
struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::path::Path> for TestDir {
    fn as_ref(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl AsRef<std::ffi::OsStr> for TestDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.path().as_os_str()
    }
}

fn temp_dir(name: &str) -> TestDir {
    TestDir(tempfile::Builder::new().prefix(&format!("kaizen-cli-{name}-")).tempdir().expect("a temporary folder"))
}

#[test]
fn run_records_episodes_and_show_prints_them() {
    let out = temp_dir("run");
    let o = kaizen(&[
        "run",
        "--env",
        "arith:2",
        "--episodes",
        "2",
        "--max-tokens-per-turn",
        "24",
        "--concurrency",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("success rate") && text(&o.stdout).contains("engine overhead"));
    let lines = std::fs::read_to_string(out.join("trajectories.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["episodes"], 2);
    assert!(out.join("trajectories.parquet").metadata().unwrap().len() > 0);
    let o = kaizen(&["show", out.to_str().unwrap(), "--episode", "1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("[task] A school orders"), "{}", text(&o.stdout));
    let o = kaizen(&["show", out.to_str().unwrap(), "--episode", "7"]);
    assert!(!o.status.success() && text(&o.stderr).contains("does not exist"));
    // Never overwrite a run; unknown envs and bad task files are clear errors.
    let o = kaizen(&["run", "--episodes", "1", "--out", out.to_str().unwrap()]);
    assert!(text(&o.stderr).contains("already holds a run"), "{}", text(&o.stderr));
    let o = kaizen(&["run", "--env", "chess", "--out", temp_dir("x").to_str().unwrap()]);
    assert!(text(&o.stderr).contains("unknown env 'chess'"), "{}", text(&o.stderr));
    let bad = temp_dir("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("t.jsonl"), "{\"prompt\": \"x\"}\n").unwrap();
    let spec = format!("jsonl:{}", bad.join("t.jsonl").display());
    let o = kaizen(&["run", "--env", &spec, "--out", bad.join("run").to_str().unwrap()]);
    assert!(text(&o.stderr).contains("line 1: missing \"answer\""), "{}", text(&o.stderr));
}

#[test]
fn a_killed_run_keeps_every_finished_episode() {
    let out = temp_dir("kill");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaizen"))
        .args([
            "run",
            "--env",
            "arith:1",
            "--episodes",
            "50",
            "--max-tokens-per-turn",
            "16",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = out.join("trajectories.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&file).map(|s| s.lines().count()).unwrap_or(0) < 3 {
        assert!(start.elapsed().as_secs() < 120, "no episodes recorded");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let complete = text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).count();
    assert!(complete >= 3, "{complete} complete episodes");
    // `show` reads the run despite the kill.
    let o = kaizen(&["show", out.to_str().unwrap(), "--episode", "2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn train_runs_a_recipe_into_a_run_directory_and_refuses_bad_ones() {
    let dir = temp_dir("train");
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("quick.toml");
    std::fs::write(
        &recipe,
        "env = \"arith:2\"\n[sft]\ndemonstrations = 4\nsteps = 3\n[rl]\nsteps = 2\ntasks_per_step = 2\n\
         group = 2\nmax_tokens_per_turn = 32\n[eval]\nevery = 1\ntasks = 2\nsamples = 2\n",
    )
    .unwrap();
    let out = dir.join("run");
    let o = kaizen(&["train", recipe.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("pass@1"), "{}", text(&o.stdout));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |phase: &str| lines.iter().filter(|m| m["phase"] == phase).count();
    // 3 SFT steps, 2 RL steps, evaluations before, after step 1 and after step 2.
    assert_eq!((count("sft"), count("rl"), count("eval")), (3, 2, 3));
    // SFT lowers the loss on its demonstrations from the untrained ~5.5 nats.
    assert!(lines[0]["loss"].as_f64().unwrap() > 4.0);
    // β = 0: no KL is measured, so none is written (and `compare` says "off", below).
    assert!(lines.iter().filter(|m| m["phase"] == "rl").all(|m| m.get("kl").is_none()), "{lines:?}");
    // The sampler and the training model run the tiny policy on the same f32 numbers: their
    // log-probs agree (the gap is logged every step; a quantised sampler would show one).
    for m in lines.iter().filter(|m| m["phase"] == "rl") {
        let gap = m["behaviour_gap"].as_f64().unwrap();
        assert!((0.0..1e-3).contains(&gap), "behaviour gap {gap}: {m}");
        // The untrained byte-level policy samples from a near-uniform distribution over its
        // 259 tokens (ln 259 = 5.56 nats): its logged entropy is high.
        let h = m["entropy"].as_f64().unwrap();
        assert!(h > 2.0 && h <= 5.56, "entropy {h}: {m}");
    }
    // The rollouts are recorded (2 tasks × 2 per step), and the policy runs as a model.
    let rollouts = std::fs::read_to_string(out.join("trajectories.jsonl")).unwrap();
    assert_eq!(rollouts.lines().count(), 8);
    let policy = out.join("policy.gguf");
    let o = kaizen(&["generate", "--policy", policy.to_str().unwrap(), "--prompt", "2+2", "--max-tokens", "4"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Two runs side by side (the same one twice: identical columns).
    let o = kaizen(&["compare", out.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    let pass_row = table.lines().find(|l| l.starts_with("held-out pass@1 (greedy)")).unwrap().to_string();
    let cells: Vec<&str> = pass_row.split_whitespace().skip(3).collect();
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[0], cells[1]);
    assert!(table.contains("held-out at RL step"), "{table}");
    // The same run paired with itself: no difference, on every one of its held-out tasks.
    let tasks: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval_tasks.json")).unwrap()).unwrap();
    assert!(table.contains(&format!("+0.0 pts (+0.0 to +0.0) on {} shared tasks", tasks.len())), "{table}");
    // A metrics file shorter than its checkpoint says (records lost) is refused on resume,
    // naming the file, and nothing is changed.
    let copy = dir.join("run-short");
    std::fs::create_dir_all(copy.join("checkpoints")).unwrap();
    for f in ["config.json", "metrics.jsonl", "trajectories.jsonl"] {
        std::fs::copy(out.join(f), copy.join(f)).unwrap();
    }
    let ckpt = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
    std::fs::create_dir_all(copy.join("checkpoints").join(&ckpt)).unwrap();
    for e in std::fs::read_dir(out.join("checkpoints").join(&ckpt)).unwrap().flatten() {
        std::fs::copy(e.path(), copy.join("checkpoints").join(&ckpt).join(e.file_name())).unwrap();
    }
    std::fs::copy(out.join("checkpoints/latest"), copy.join("checkpoints/latest")).unwrap();
    let metrics = std::fs::read(copy.join("metrics.jsonl")).unwrap();
    std::fs::write(copy.join("metrics.jsonl"), &metrics[..metrics.len() / 2]).unwrap();
    let o = kaizen(&["train", "--resume", copy.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("records were lost"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read(copy.join("metrics.jsonl")).unwrap().len(), metrics.len() / 2);
    let kl_row = table.lines().find(|l| l.starts_with("KL to reference")).unwrap();
    assert_eq!(kl_row.split_whitespace().skip(3).collect::<Vec<_>>(), ["off", "off"], "{table}");
    // β > 0 with ADPO, Dr.GRPO and RLOO, end to end on tasks where the SFT policy succeeds
    // sometimes (mixed rewards in a group): each estimator's advantages are non-zero on some
    // step and the update moves the weights, and the KL to the SFT policy is measured on every
    // RL step.
    for estimator in ["adpo", "dr_grpo", "rloo"] {
        let variant = thirds_recipe(
            &dir.join(format!("{estimator}-recipe")),
            "steps = 100",
            &format!("estimator = \"{estimator}\"\nbeta = 0.05\nadpo_m = 0.5"),
            "",
        );
        let run = dir.join(format!("run-{estimator}"));
        let o = kaizen(&["train", variant.to_str().unwrap(), "--out", run.to_str().unwrap()]);
        assert!(o.status.success(), "{estimator}: {}", text(&o.stderr));
        let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let rl: Vec<serde_json::Value> = metrics
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|m: &serde_json::Value| m["phase"] == "rl")
            .collect();
        assert_eq!(rl.len(), 6, "{estimator}");
        assert!(
            rl.iter()
                .any(|m| m["zero_advantage_rate"].as_f64().unwrap() < 1.0 && m["grad_norm"].as_f64().unwrap() > 0.0),
            "{estimator}: no step with a non-zero advantage: {rl:?}"
        );
        for m in &rl {
            assert!(m["kl"].as_f64().is_some_and(|k| k >= 0.0 && k.is_finite()), "{estimator}: {m}");
            // β > 0 keeps every row in the update, so the behaviour gap is measured on real tokens.
            assert!(m["behaviour_gap"].as_f64().is_some_and(|g| (0.0..1e-3).contains(&g)), "{estimator}: {m}");
        }
    }
    // Each evaluation: greedy / sampled / pass@k, the same numbers as metrics.jsonl's.
    let last_eval = lines.iter().rev().find(|m| m["phase"] == "eval").unwrap();
    let want = format!(
        "{:.3} / {:.3} / {:.3}",
        last_eval["pass_at_1"].as_f64().unwrap(),
        last_eval["reward"].as_f64().unwrap(),
        last_eval["pass_at_k"].as_f64().unwrap()
    );
    assert!(table.lines().any(|l| l.starts_with("2 ") && l.contains(&want)), "{want} missing:\n{table}");
    let o = kaizen(&["compare", dir.join("nowhere").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("metrics.jsonl"), "{}", text(&o.stderr));
    // A bad field names itself and what it allows.
    std::fs::write(&recipe, "[rl]\nestimator = \"ppo\"\n").unwrap();
    let o = kaizen(&["train", recipe.to_str().unwrap(), "--out", dir.join("bad").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("rl.estimator"), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("grpo, dr_grpo, adpo, axpo"));
    // Absurd dimensions are refused before anything is allocated (not an allocation abort).
    std::fs::write(&recipe, "[policy]\nlayers = 1000\nwidth = 1048576\nheads = 8\n").unwrap();
    let o = kaizen(&["train", recipe.to_str().unwrap(), "--out", dir.join("huge").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("width = 1048576") && text(&o.stderr).contains("GiB"), "{}", text(&o.stderr));
}

/// Input that can never work is refused before any episode runs, naming what is wrong.
#[test]
fn tasks_that_cannot_fit_or_cannot_pass_are_refused_at_load() {
    let dir = temp_dir("refused");
    std::fs::create_dir_all(&dir).unwrap();
    // A prompt longer than SmolLM2's 8,192-token context: an error naming the task, no run.
    let long = format!("{{\"id\": \"long-one\", \"prompt\": \"{}\", \"answer\": \"1\"}}\n", "word ".repeat(9000));
    std::fs::write(dir.join("long.jsonl"), format!("{{\"prompt\": \"2+2?\", \"answer\": \"4\"}}\n{long}")).unwrap();
    let out = dir.join("run-long");
    let spec = format!("jsonl:{}", dir.join("long.jsonl").display());
    let o = kaizen(&["run", "--env", &spec, "--episodes", "2", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("task long-one") && text(&o.stderr).contains("context window"),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.exists(), "a run that cannot work was started");
    // A numeric task whose answer is no number.
    std::fs::write(dir.join("nan.jsonl"), "{\"prompt\": \"x\", \"answer\": \"many\", \"checker\": \"numeric\"}\n")
        .unwrap();
    let spec = format!("jsonl:{}", dir.join("nan.jsonl").display());
    let o = kaizen(&["run", "--env", &spec, "--out", dir.join("run-nan").to_str().unwrap()]);
    assert!(text(&o.stderr).contains("line 1: \"answer\" \"many\" is not a number"), "{}", text(&o.stderr));
}

/// A web run stopped with SIGTERM (or Ctrl-C), or killed with SIGKILL, takes its browsers with
/// it: no Chromium nor chromedriver is left running once the process has gone.
#[test]
fn a_stopped_web_run_leaves_no_browser_behind() {
    for signal in ["-TERM", "-KILL"] {
        let out = temp_dir(&format!("web-stopped{signal}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_kaizen"))
            .args(["run", "--env", "miniwob-easy", "--policy", "random", "--episodes", "100000", "--concurrency", "2"])
            .args(["--out", out.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Browser processes carry their profile directory, named after the kaizen process; their
        // process group is their chromedriver's.
        let marker = format!("kaizen-browser-{}-", child.id());
        let stat_field = |pid: &str, n: usize| -> Option<String> {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            stat.rsplit_once(')')?.1.split_whitespace().nth(n).map(str::to_string)
        };
        let browsers = || -> Vec<String> {
            let procs = std::fs::read_dir("/proc").unwrap().flatten();
            procs
                .filter(|p| {
                    std::fs::read(p.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
                })
                .filter_map(|p| stat_field(&p.file_name().to_string_lossy(), 2))
                .collect()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while browsers().len() < 2 {
            assert!(std::time::Instant::now() < deadline, "no browser started");
            assert!(child.try_wait().unwrap().is_none(), "the run ended early");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let groups: std::collections::BTreeSet<String> = browsers().into_iter().collect();
        let o = Command::new("kill").args([signal, &child.id().to_string()]).output().unwrap();
        assert!(o.status.success());
        let status = child.wait().unwrap();
        assert!(!status.success());
        // Any process still in a browser's group (chromedriver, Chromium, its helpers).
        let in_groups = || {
            std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|p| stat_field(&p.file_name().to_string_lossy(), 2).is_some_and(|g| groups.contains(&g)))
                .filter(|p| stat_field(&p.file_name().to_string_lossy(), 0).is_some_and(|state| state != "Z"))
                .count()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while (in_groups() > 0 || !browsers().is_empty()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(browsers().len(), 0, "{signal}: Chromium processes outlived the stopped run");
        assert_eq!(in_groups(), 0, "{signal}: browser processes outlived the stopped run");
    }
}

#[test]
fn run_drives_web_tasks_in_chromium_with_reference_agents_and_a_model() {
    let env = "miniwob:click-test,click-button,enter-text,login-user";
    let run = |policy: &str, extra: &[&str]| {
        let out = temp_dir(&format!("web-{policy}"));
        let mut args = vec!["run", "--env", env, "--policy", policy, "--episodes", "8", "--concurrency", "2"];
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let o = kaizen(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let ts: Vec<serde_json::Value> = std::fs::read_to_string(out.join("trajectories.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(ts.len(), 8);
        (text(&o.stdout), ts, out)
    };
    // The oracle solves all four tasks through the normal episode runner; with
    // `--screenshots` every observation carries the page as a PNG, stored once in the run's
    // `images/` under its content hash and named by the trajectory line.
    let (table, ts, run_dir) = run("oracle", &["--screenshots"]);
    assert!(table.contains("success rate") && table.contains("100.0% (95%"), "{table}");
    let images: Vec<&str> = ts
        .iter()
        .flat_map(|t| t["turns"].as_array().unwrap())
        .flat_map(|turn| turn["observations"].as_array().unwrap())
        .map(|o| o["images"][0].as_str().unwrap_or(""))
        .collect();
    assert!(
        !images.is_empty()
            && images.iter().all(|i| {
                i.starts_with("images/") && std::fs::read(run_dir.join(i)).unwrap().starts_with(b"\x89PNG")
            }),
        "{images:?}"
    );
    let o = kaizen(&["run", "--env", env, "--screenshots", "--out", temp_dir("web-text-only").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("local models read text only"), "{}", text(&o.stderr));
    assert!(table.contains("login-user                          2      100%"), "{table}");
    assert!(ts.iter().all(|t| t["reward"] == 1.0 && t["end"]["kind"] == "env_done"), "{ts:?}");
    // The first view is the instruction and the rendered page.
    assert!(ts[0]["task"]["prompt"].as_str().unwrap().starts_with("Task: "), "{}", ts[0]["task"]["prompt"]);
    // The task's screenshot is recorded with the task, as the policy (and a scorer) saw it.
    assert!(ts.iter().all(|t| t["task"]["images"][0].as_str().is_some_and(|i| i.starts_with("images/"))), "{ts:?}");
    // A random clicker fails some (−1 from the page itself).
    let (_, ts, _) = run("random", &[]);
    assert!(ts.iter().any(|t| t["reward"] == -1.0), "{ts:?}");
    // A local model runs through the batched engine with the page's action tools. Alone it
    // writes no valid action; shown one episode of the oracle (`--shots 1`), it acts on the page
    // with well-formed calls and solves some.
    let (table, ts, web_run) = run("smollm2", &["--max-turns", "1", "--max-tokens-per-turn", "28", "--shots", "1"]);
    assert!(table.contains("mean decode batch"), "{table}");
    assert!(ts.iter().all(|t| !t["token_ids"].as_array().unwrap().is_empty()));
    assert!(ts.iter().all(|t| t["end"]["kind"] != "error"), "{ts:?}");
    let acted = |t: &serde_json::Value| !t["turns"][0]["tool_calls"].as_array().unwrap().is_empty();
    assert!(ts.iter().all(acted), "{ts:?}");
    assert!(ts.iter().any(|t| t["reward"] == 1.0), "{ts:?}");
    // Its report finds the model the run names (`policy_spec`), for the heat-map's token texts.
    let o = kaizen(&["report", web_run.to_str().unwrap(), "--out", web_run.join("r.html").to_str().unwrap()]);
    let listed = text(&o.stdout);
    assert!(
        o.status.success() && listed.lines().any(|l| l.contains("web-smollm2") && l.trim_end().ends_with("yes")),
        "{listed}"
    );
}

/// A recipe the tiny policy trains on in seconds, written into `dir` with its task file: "is N
/// divisible by 3?" for N = 100..=220, each with its worked answer for SFT — an answer format
/// the policy learns within SFT and answers it cannot compute, so RL groups have mixed rewards.
/// `sft` and `rl` are more lines of those sections (`sft` gives `steps`), `extra` more sections.
fn thirds_recipe(dir: &std::path::Path, sft: &str, rl: &str, extra: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let tasks = dir.join("thirds.jsonl");
    let lines: Vec<String> = (100..=220)
        .map(|n| {
            let a = if n % 3 == 0 { "yes" } else { "no" };
            serde_json::json!({"id": format!("third-{n}"), "prompt": format!("Is {n} divisible by 3?"), "answer": a,
                               "demonstration": format!("\\boxed{{{a}}}")})
            .to_string()
        })
        .collect();
    std::fs::write(&tasks, lines.join("\n")).unwrap();
    let recipe = dir.join("r.toml");
    std::fs::write(
        &recipe,
        format!(
            "env = \"jsonl:{}\"\nseed = 3\ntool_schemas = false\n[policy]\nlayers = 1\nwidth = 32\nheads = 2\n\
             [sft]\ndemonstrations = 32\n{sft}\n[rl]\n{rl}\nsteps = 6\ntemperature = 0.7\ntasks_per_step = 2\n\
             group = 4\nmax_turns = 1\nmax_tokens_per_turn = 16\n[eval]\nevery = 2\ntasks = 2\nsamples = 2\n{extra}",
            tasks.display()
        ),
    )
    .unwrap();
    recipe
}

/// Agent0-VL's process rewards through `kaizen train` (`rl.estimator = "process"`): after each
/// step's rollouts the policy, in its verifier role, judges every step of every rollout (an
/// episode of its own per rollout), the verdicts are recorded in the turns, the metrics say how
/// many were unreadable, and the PPO update runs on the per-token advantages. Without the cold
/// start the tiny policy has not learnt the verifier's format, so its verdicts are unreadable
/// and neutral and no repair opens: the solver's outcomes are untouched. (These episodes are
/// one tool-free turn, where the process return is the outcome, so the whole run is GRPO's byte
/// for byte; with tools or several turns the process terms make it differ.)
#[test]
fn process_rewards_train_with_the_policy_verifying_its_own_steps() {
    let dir = temp_dir("process");
    // Without the verifier's cold start, so that the tiny policy's verdicts are garbage.
    let recipe = thirds_recipe(&dir, "steps = 150", "estimator = \"process\"", "[rl.process]\nverifier_examples = 0\n");
    let out = dir.join("run");
    let o = kaizen(&["train", recipe.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let rollouts: Vec<serde_json::Value> = std::fs::read_to_string(out.join("trajectories.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rollouts.len(), 6 * 2 * 4);
    let turns: Vec<&serde_json::Value> = rollouts.iter().flat_map(|t| t["turns"].as_array().unwrap()).collect();
    assert!(!turns.is_empty() && turns.iter().all(|t| t["verdict"].is_object()), "a turn was not judged");
    // Each verdict came from a verification episode that ran (how it ended is recorded).
    assert!(
        rollouts.iter().all(|t| t["reward_detail"]["verification"]["end"]["kind"].is_string()),
        "{:?}",
        rollouts[0]
    );
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|m: &serde_json::Value| m["phase"] == "rl")
        .collect();
    assert_eq!(metrics.len(), 6);
    assert!(metrics.iter().all(|m| m["verifier_unreadable"].as_f64().is_some_and(|u| (0.0..=1.0).contains(&u))));
    assert!(metrics.iter().any(|m| m["grad_norm"].as_f64().unwrap() > 0.0), "no update ran");
    // The tiny policy's verdicts are all unreadable, so no repair ever opens: a verifier that
    // writes garbage leaves the solver alone. One tool-free turn: every rollout, and the trained
    // policy, is GRPO's.
    assert!(metrics.iter().all(|m| m["verifier_unreadable"] == 1.0 && m["repairs"] == 0), "{metrics:?}");
    let grpo = dir.join("grpo");
    let recipe_grpo = thirds_recipe(&dir.join("g"), "steps = 150", "", "");
    let o = kaizen(&["train", recipe_grpo.to_str().unwrap(), "--out", grpo.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let outcome = |run: &std::path::Path| -> Vec<(serde_json::Value, serde_json::Value)> {
        std::fs::read_to_string(run.join("trajectories.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|t| (t["token_ids"].clone(), t["reward"].clone()))
            .collect()
    };
    assert_eq!(outcome(&out), outcome(&grpo));
    let bytes = |run: &std::path::Path| std::fs::read(run.join("policy.gguf")).unwrap();
    assert!(bytes(&out) == bytes(&grpo), "the trained policies differ");
    // With the cold start (the default), worked verifications of solver episodes of known
    // correctness join SFT: the starting policy's rollouts, half of them wrong, and the env's
    // demonstrations, each answered with its labelled verdicts.
    let recipe = thirds_recipe(&dir.join("cold"), "steps = 20", "estimator = \"process\"", "");
    let cold = dir.join("cold-run");
    let o = kaizen(&["train", recipe.to_str().unwrap(), "--out", cold.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let sources: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cold.join("sft_sources.json")).unwrap()).unwrap();
    assert_eq!(sources[1]["env"], "verifier", "{sources}");
    assert_eq!(sources[1]["demonstrations"], 32, "{sources}");
    // Another model in the verifier role (`--verifier`, here the GRPO run's policy as a .gguf
    // file; `openai:URL` the same way): every rollout judged by it; refused for an estimator
    // that reads no verdicts.
    let judged = dir.join("judged");
    let o = kaizen(&[
        "train",
        recipe.to_str().unwrap(),
        "--out",
        judged.to_str().unwrap(),
        "--verifier",
        grpo.join("policy.gguf").to_str().unwrap(),
    ]);
    assert!(o.status.success() && text(&o.stderr).contains("the verifier role:"), "{}", text(&o.stderr));
    let rollouts = std::fs::read_to_string(judged.join("trajectories.jsonl")).unwrap();
    assert!(rollouts.lines().count() > 0);
    for l in rollouts.lines() {
        let t: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(t["reward_detail"]["verification"]["end"]["kind"].is_string(), "{t}");
    }
    let o = kaizen(&[
        "train",
        recipe_grpo.to_str().unwrap(),
        "--out",
        dir.join("no").to_str().unwrap(),
        "--verifier",
        grpo.join("policy.gguf").to_str().unwrap(),
    ]);
    assert!(!o.status.success() && text(&o.stderr).contains("use \"process\""), "{}", text(&o.stderr));
    // A misspelt estimator is an error that lists this one.
    std::fs::write(dir.join("bad.toml"), "[rl]\nestimator = \"proces\"\n").unwrap();
    let o = kaizen(&["train", dir.join("bad.toml").to_str().unwrap(), "--out", dir.join("bad").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("process"), "{}", text(&o.stderr));
}

/// `kaizen evolve --mode vl`: Agent0-VL's cycle on the tiny policy — the cold start (SFT with
/// worked verifications), then iterations of RL on process rewards, each scored on held-out
/// tasks: the solver alone, the same episodes after the verifier judged every step and the
/// unsure ones were repaired, and the verifier as a PRM over 2 samples. Killed (SIGKILL) after
/// the first iteration's first RL step, it resumes there: the finished stages do not run again.
#[test]
fn evolve_vl_runs_the_agent0_vl_cycle_and_resumes_after_kill_9() {
    let dir = temp_dir("evolve-vl");
    let train = thirds_recipe(&dir, "steps = 20", "estimator = \"process\"", "");
    let recipe = dir.join("agent0-vl-test.toml");
    std::fs::write(
        &recipe,
        format!(
            "train = \"{}\"\niterations = 2\nsteps_per_iteration = 3\n[held_out]\ntasks = 6\ncandidates = 2\n",
            train.file_name().unwrap().to_str().unwrap()
        ),
    )
    .unwrap();
    let run = dir.join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaizen"))
        .args(["evolve", "--mode", "vl", recipe.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stage = run.join("iter-1").join("train");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    // Killed once the first iteration's first RL step is written, in the middle of its RL.
    let stepped = || std::fs::read_to_string(stage.join("metrics.jsonl")).is_ok_and(|m| m.contains("\"phase\":\"rl\""));
    while !stepped() {
        assert!(std::time::Instant::now() < deadline, "the first iteration's RL did not step in 600 s");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let cold_eval = std::fs::read(run.join("iter-0").join("eval.json")).unwrap();
    let o = kaizen(&["evolve", "--resume", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stderr = text(&o.stderr);
    assert!(!stderr.contains("cold start"), "the finished cold start ran again:\n{stderr}");
    assert!(stderr.contains("RL on process rewards"), "{stderr}");
    assert_eq!(std::fs::read(run.join("iter-0").join("eval.json")).unwrap(), cold_eval);
    let table = text(&o.stdout);
    assert!(table.contains("solver alone") && table.contains("PRM best-of-N"), "{table}");

    // The cold start taught the verifier on worked verifications.
    let sources: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("iter-0").join("cold-start").join("sft_sources.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sources[1]["env"], "verifier", "{sources}");

    // One record per iteration; what the repairs did adds up to the change in accuracy.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(run.join("evolution.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.iter().map(|r| r["iteration"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    let held: Vec<String> = serde_json::from_str(&std::fs::read_to_string(run.join("held_out.json")).unwrap()).unwrap();
    assert_eq!(held.len(), 6);
    for r in &records {
        let n = |k: &str| r[k].as_i64().unwrap();
        assert_eq!(r["solver"]["tasks"], 6, "{r}");
        assert_eq!(
            r["repaired"]["solved"].as_i64().unwrap(),
            r["solver"]["solved"].as_i64().unwrap() + n("wrong_to_right") - n("right_to_wrong"),
            "{r}"
        );
        assert_eq!(r["prm"]["prm"]["tasks"], 6, "{r}");
        assert!(r["prm"]["steps"].as_u64().unwrap() >= 12, "every one of 2 × 6 solutions judged: {r}");
        assert_eq!(r["training"].is_object(), r["iteration"] != 0, "{r}");
    }
    assert_eq!(records[1]["training"]["steps"], 3, "{}", records[1]);
    // Every held-out episode was judged step by step by a verification that ran; each repair is
    // recorded with the episode it replaced.
    for i in 0..=2 {
        let eps: Vec<serde_json::Value> =
            std::fs::read_to_string(run.join(format!("iter-{i}")).join("held-out").join("trajectories.jsonl"))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        assert_eq!(eps.len(), 6);
        for t in &eps {
            assert!(t["turns"].as_array().unwrap().iter().all(|x| x["verdict"].is_object()), "{t}");
            assert!(t["reward_detail"]["verification"]["end"]["kind"].is_string(), "{t}");
        }
        let replaced = eps
            .iter()
            .flat_map(|t| t["reward_detail"]["repairs"].as_array().cloned().unwrap_or_default())
            .filter(|r| r["after"].is_number())
            .count();
        assert_eq!(replaced as u64, records[i]["repairs"].as_u64().unwrap());
    }
    // Held out by content: no training rollout's task is a held-out task (the demonstrations:
    // `kaizen_evolve::vl`'s unit tests).
    let mut trained = std::collections::HashSet::new();
    for stage in ["iter-0/cold-start", "iter-1/train", "iter-2/train"] {
        let path = run.join(stage).join("trajectories.jsonl");
        for l in std::fs::read_to_string(&path).unwrap_or_default().lines() {
            let t: serde_json::Value = serde_json::from_str(l).unwrap();
            trained.insert(t["task"]["prompt"].as_str().unwrap().to_lowercase());
        }
    }
    assert!(trained.len() >= 6, "the RL stages' rollouts were not read: {trained:?}");
    assert!(held.iter().all(|k| !trained.contains(k)), "a held-out task was trained on: {held:?}");

    // The verifier of the last stage as a PRM: its held-out tasks leave out, by content, every
    // task its weights were trained on back along the cycle — the cold start's 32
    // demonstrations (the file's lines from 3 mod 121 = 3 on, seed 3) and both iterations' RL
    // tasks — though 70 of the file's 121 are asked for.
    let stage = run.join("iter-2").join("train");
    let prm = dir.join("prm");
    let o = kaizen(&[
        "eval-prm",
        "--env",
        &format!("jsonl:{}", dir.join("thirds.jsonl").display()),
        "--policy",
        stage.join("policy.gguf").to_str().unwrap(),
        "--weights",
        "f32",
        "--no-tool-schemas",
        "--candidates",
        "2",
        "--episodes",
        "70",
        "--max-turns",
        "1",
        "--max-tokens-per-turn",
        "16",
        "--verifier-max-turns",
        "1",
        "--verifier-max-tokens-per-turn",
        "32",
        "--out",
        prm.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("held out by content"), "{}", text(&o.stdout));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prm.join("eval_prm.json")).unwrap()).unwrap();
    assert_eq!(doc["held_out_by_content"], true);
    let mut weights_saw: std::collections::HashSet<String> =
        (0..32).map(|i| format!("is {} divisible by 3?", 100 + (3 + i) % 121)).collect();
    for it in ["iter-1", "iter-2"] {
        for l in std::fs::read_to_string(run.join(it).join("train").join("trajectories.jsonl")).unwrap().lines() {
            let t: serde_json::Value = serde_json::from_str(l).unwrap();
            weights_saw.insert(t["task"]["prompt"].as_str().unwrap().to_lowercase());
        }
    }
    let asked: Vec<&str> = doc["tasks"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(asked.len(), 70);
    assert!(weights_saw.len() >= 33 && asked.iter().all(|k| !weights_saw.contains(*k)), "{asked:?}");

    // Agent0's flags are refused in this mode.
    let o = kaizen(&["evolve", "--mode", "vl", recipe.to_str().unwrap(), "--estimator", "grpo"]);
    assert!(!o.status.success() && text(&o.stderr).contains("Agent0's"), "{}", text(&o.stderr));
}

/// `kaizen eval-prm`: SmolLM2's solutions of held-out arith tasks judged by SmolLM2 as the
/// verifier (prompted only); every solution and every verification ran, the four picks are
/// reported with intervals, and the table is written for reports. Bad arguments are refused.
#[test]
fn eval_prm_judges_every_solution_and_reports_the_four_picks() {
    let dir = temp_dir("eval-prm");
    let o = kaizen(&[
        "eval-prm",
        "--env",
        "arith:1",
        "--policy",
        "smollm2",
        "--candidates",
        "2",
        "--episodes",
        "3",
        "--max-turns",
        "1",
        "--max-tokens-per-turn",
        "40",
        "--verifier-max-turns",
        "1",
        "--verifier-max-tokens-per-turn",
        "48",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    for row in ["verifier (PRM)", "majority vote", "random of N", "pass@N (oracle)", "verifier steps judged: "] {
        assert!(table.contains(row), "{row} missing from {table}");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval_prm.json")).unwrap()).unwrap();
    assert_eq!(doc["rows"].as_array().unwrap().len(), 4);
    assert!(doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["tasks"] == 3 && r["solved"].as_array().unwrap().len() == 3));
    // Each of the 6 solutions was judged: one step each (one turn), so 6 steps, each recorded
    // with its solution.
    assert_eq!(doc["steps"], 6, "{doc}");
    let solutions: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("trajectories.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(solutions.len(), 6);
    assert!(solutions.iter().all(|s| s["turns"][0]["verdict"].is_object()), "{:?}", solutions[0]);
    // The report shows the table.
    let page = dir.join("r.html");
    let o = kaizen(&["report", dir.to_str().unwrap(), "--out", page.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("Verifier as PRM") && html.contains("<td>pass@N (oracle)</td>"), "no PRM table");
    let o = kaizen(&["eval-prm", "--candidates", "1"]);
    assert!(!o.status.success() && text(&o.stderr).contains("--candidates"), "{}", text(&o.stderr));
    let o = kaizen(&["eval-prm", "--env", "miniwob-easy"]);
    assert!(!o.status.success() && text(&o.stderr).contains("answers"), "{}", text(&o.stderr));
}

/// `kill -9` in the middle of SFT and, in a second run, in the middle of RL, then `--resume`:
/// each run ends exactly where an uninterrupted run with the same recipe ends — the same policy
/// bytes, the same optimizer moments byte for byte, the same metrics and rollouts. The tasks
/// ("is N divisible by 3?", with worked answers for SFT) have an answer format the tiny policy
/// learns within the SFT phase and answers it cannot compute, so it guesses: RL groups have
/// mixed rewards and the PPO steps before the kill really move the weights (asserted); a test
/// whose advantages were all zero would resume a run that never updated anything.
#[test]
fn a_killed_training_run_resumes_to_the_same_result() {
    let dir = temp_dir("resume");
    let recipe = thirds_recipe(&dir, "steps = 150", "", "[checkpoint]\nevery = 1\nsft_every = 2\n");
    let straight = dir.join("straight");
    let o = kaizen(&["train", recipe.to_str().unwrap(), "--out", straight.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));

    let metrics_of = |run: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let latest_of = |run: &std::path::Path| std::fs::read_to_string(run.join("checkpoints").join("latest"));
    // Starts the recipe and kills it (SIGKILL) as soon as `at` holds of the run directory.
    let kill_when = |name: &str, at: &dyn Fn(&std::path::Path) -> bool| -> std::path::PathBuf {
        let run = dir.join(name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kaizen"))
            .args(["train", recipe.to_str().unwrap(), "--out", run.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while !at(&run) {
            assert!(std::time::Instant::now() < deadline, "{name}: no such checkpoint in 300 s");
            assert!(child.try_wait().unwrap().is_none(), "{name}: the run ended before it could be killed");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        run
    };

    // Killed during SFT: its last checkpoint is an SFT one and no RL step ran.
    let in_sft = kill_when("killed-in-sft", &|run| latest_of(run).is_ok_and(|l| l.starts_with("sft-")));
    assert!(latest_of(&in_sft).unwrap().starts_with("sft-"), "killed after SFT");
    assert!(metrics_of(&in_sft).iter().all(|m| m["phase"] != "rl"), "killed after SFT");
    // Killed during RL: after at least two PPO steps (checkpoint rl-000002 to rl-000004), and
    // in the middle of the next step — its rollouts already appended past what the checkpoint
    // recorded, so resuming must cut them.
    let progress_of = |run: &std::path::Path| -> Option<(usize, serde_json::Value)> {
        let latest = latest_of(run).ok()?;
        let step = latest.strip_prefix("rl-")?.parse().ok()?;
        let text = std::fs::read_to_string(run.join("checkpoints").join(&latest).join("progress.json")).ok()?;
        Some((step, serde_json::from_str(&text).ok()?))
    };
    let mid_step = |run: &std::path::Path| {
        progress_of(run).is_some_and(|(step, p)| {
            let written = std::fs::metadata(run.join("trajectories.jsonl")).map(|m| m.len()).unwrap_or(0);
            (2..=4).contains(&step) && written > p["trajectories_bytes"].as_u64().unwrap_or(u64::MAX)
        })
    };
    let in_rl = kill_when("killed-in-rl", &mid_step);
    let (checkpointed, _) = progress_of(&in_rl).unwrap();
    let before: Vec<serde_json::Value> = metrics_of(&in_rl)
        .into_iter()
        .filter(|m| m["phase"] == "rl" && (m["step"].as_u64().unwrap() as usize) < checkpointed)
        .collect();
    assert!(before.len() >= 2, "{before:?}");
    assert!(
        before
            .iter()
            .any(|m| m["zero_advantage_rate"].as_f64().unwrap() < 1.0 && m["grad_norm"].as_f64().unwrap() > 0.0),
        "no PPO update with a non-zero advantage before the kill: {before:?}"
    );
    assert!(metrics_of(&in_rl).iter().filter(|m| m["phase"] == "rl").count() < 6, "killed after the last step");

    let file = |run: &std::path::Path, name: &str| std::fs::read(run.join(name)).unwrap();
    let last_checkpoint = |run: &std::path::Path, f: &str| {
        let latest = latest_of(run).unwrap();
        file(run, &format!("checkpoints/{latest}/{f}"))
    };
    // Same metrics line for line, timings aside; same rollouts.
    let metrics = |run: &std::path::Path| -> Vec<String> {
        let keep = ["phase", "step", "loss", "reward", "kl", "clip_fraction", "grad_norm", "pass_at_1", "pass_at_k"];
        metrics_of(run).iter().map(|m| keep.iter().map(|k| m[k].to_string()).collect::<Vec<_>>().join(" ")).collect()
    };
    let rewards = |run: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(run.join("trajectories.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let t: serde_json::Value = serde_json::from_str(l).unwrap();
                format!("{} {} {}", t["episode_id"], t["reward"], t["token_ids"])
            })
            .collect()
    };
    assert!(
        rewards(&straight).iter().any(|r| r.contains(" 1.0 "))
            && rewards(&straight).iter().any(|r| r.contains(" 0.0 "))
    );
    for killed in [&in_sft, &in_rl] {
        let o = kaizen(&["train", "--resume", killed.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(text(&o.stdout).contains("pass@1"), "{}", text(&o.stdout));
        let name = killed.file_name().unwrap().to_string_lossy().into_owned();
        assert!(file(&straight, "policy.gguf") == file(killed, "policy.gguf"), "{name}: the resumed policy differs");
        assert_eq!(latest_of(&straight).unwrap(), latest_of(killed).unwrap());
        for f in ["policy.safetensors", "optimizer.safetensors"] {
            assert!(last_checkpoint(&straight, f) == last_checkpoint(killed, f), "{name}: the final {f} differs");
        }
        // The record lengths differ with the timings written; where the run stands does not.
        let stands = |run: &std::path::Path| {
            let p: serde_json::Value = serde_json::from_slice(&last_checkpoint(run, "progress.json")).unwrap();
            (p["phase"].clone(), p["next_step"].clone(), p["optimizer_step"].clone())
        };
        assert_eq!(stands(&straight), stands(killed), "{name}");
        assert_eq!(metrics(&straight), metrics(killed), "{name}");
        assert_eq!(rewards(&straight), rewards(killed), "{name}");
    }
    // Resuming a run without a checkpoint says so.
    let o = kaizen(&["train", "--resume", dir.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("not a training run"), "{}", text(&o.stderr));
}

/// Best-of-Q end to end on web tasks: collect episodes of a random-clicking proposer with
/// candidate sets, train a Q-function on them, and rerank the same proposer's candidates on
/// held-out tasks — it must beat the proposer alone and a random pick among the candidates.
#[test]
fn best_of_q_collects_trains_and_reranks_web_actions() {
    let dir = temp_dir("bestofq");
    let (data, q) = (dir.join("data"), dir.join("q.safetensors"));
    let env = "miniwob:click-button,click-link,click-test-2,click-dialog";
    let o = kaizen(&[
        "collect",
        "--env",
        env,
        "--policy",
        "random",
        "--tasks",
        "60",
        "--samples",
        "2",
        "--candidates",
        "4",
        "--concurrency",
        "2",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let first: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(data.join("trajectories.jsonl")).unwrap().lines().next().unwrap())
            .unwrap();
    let cands = first["turns"][0]["candidates"].as_array().unwrap();
    assert!(cands.len() >= 2 && cands.iter().filter(|c| c["chosen"] == true).count() == 1, "{cands:?}");
    let o = kaizen(&[
        "q",
        "train",
        data.to_str().unwrap(),
        "--objective",
        "iql",
        "--epochs",
        "200",
        "--out",
        q.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = text(&o.stdout);
    let auc: f64 =
        report.lines().find(|l| l.contains("AUC")).unwrap().split_whitespace().last().unwrap().parse().unwrap();
    assert!(auc > 0.6, "held-out AUC {auc}\n{report}");
    // Zero epochs, or runs holding one outcome only, would save a Q-function that learnt
    // nothing: refused, and nothing is written.
    let q0 = dir.join("q0.safetensors");
    let o = kaizen(&["q", "train", data.to_str().unwrap(), "--epochs", "0", "--out", q0.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("--epochs must be at least 1"), "{}", text(&o.stderr));
    let failed = dir.join("failed-only");
    std::fs::create_dir_all(&failed).unwrap();
    std::fs::copy(data.join("config.json"), failed.join("config.json")).unwrap();
    let records = std::fs::read_to_string(data.join("trajectories.jsonl")).unwrap();
    let lost: String = records
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["reward"].as_f64().unwrap() <= 0.0)
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!lost.is_empty());
    std::fs::write(failed.join("trajectories.jsonl"), lost).unwrap();
    let o = kaizen(&["q", "train", failed.to_str().unwrap(), "--val-share", "0", "--out", q0.to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("all failed"), "{}", text(&o.stderr));
    assert!(!q0.exists());
    // Held-out tasks (another seed stream): the proposer alone, a random pick of 4, Best-of-Q.
    let success = |extra: &[&str], name: &str| -> f64 {
        let out = dir.join(name);
        let mut args =
            vec!["run", "--env", env, "--policy", "random", "--seed", "5000", "--episodes", "60", "--candidates", "4"];
        args.extend_from_slice(&["--concurrency", "2", "--out", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        let o = kaizen(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        s["success_rate"].as_f64().unwrap()
    };
    let alone = success(&["--select", "first"], "alone");
    let random = success(&["--select", "random"], "random");
    let best = success(&["--rerank", q.to_str().unwrap()], "q");
    assert!(best > alone + 0.05 && best > random + 0.05, "Best-of-Q {best} vs alone {alone}, random-of-4 {random}");
    let scored: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(dir.join("q").join("trajectories.jsonl")).unwrap().lines().next().unwrap(),
    )
    .unwrap();
    assert!(scored["turns"][0]["candidates"][0]["score"].is_number(), "{}", scored["turns"][0]);
    // A Q-function is refused for an unknown selector, and --select q needs one.
    let o = kaizen(&["run", "--env", env, "--select", "q", "--out", dir.join("x").to_str().unwrap()]);
    assert!(!o.status.success() && text(&o.stderr).contains("--rerank"), "{}", text(&o.stderr));
}

/// A scripted OpenAI-compatible server on loopback for `--policy openai:URL`: each answer is
/// `script(request)`, a chat completion built by the test. Plain std, one thread per connection.
fn scripted_server(script: fn(&serde_json::Value) -> serde_json::Value) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let req: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let answer = script(&req).to_string();
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            });
        }
    });
    url
}

/// Even episodes attack their sandbox server, each a different way (`ATTACKS`); odd episodes
/// print their own line.
fn attacking_policy(req: &serde_json::Value) -> serde_json::Value {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let task =
        messages.iter().filter(|m| m["role"] == "user").map(|m| m["content"].to_string()).next().unwrap_or_default();
    let n: usize = task
        .split("episode ")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(999);
    let message = if messages.iter().any(|m| m["role"] == "tool") {
        serde_json::json!({"role": "assistant", "content": "\\boxed{done}"})
    } else {
        let code = match ATTACKS.get(n / 2) {
            Some(attack) if n % 2 == 0 => format!(
                "import os, signal, resource, ctypes\n\
                 libc = ctypes.CDLL(None, use_errno=True)\n\
                 forged = b'kaizen-sandbox 0000000000000000 40\\n{{\"stdout\": \"FORGED\", \"exit_code\": 0}}'\n\
                 for t in sorted({{os.getppid(), 1}}):\n\
                 \x20   try:\n\
                 \x20       {attack}\n\
                 \x20   except OSError:\n\
                 \x20       pass\n\
                 print('attacked')"
            ),
            _ => format!("print('episode {n} output')"),
        };
        let args = serde_json::json!({ "code": code }).to_string();
        serde_json::json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": format!("call_{n}"), "type": "function", "function": {"name": "python", "arguments": args}}]})
    };
    serde_json::json!({"id": "x", "object": "chat.completion", "created": 0, "model": "scripted",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
}

/// Ways a call could reach its server (`t` is the server's pid as the call sees it): forged
/// frames written through /proc (one for this call, one waiting for the next), ptrace, lowered
/// limits, SIGSTOP, SIGKILL.
const ATTACKS: [&str; 6] = [
    "[os.write(os.open(f'/proc/{t}/fd/{fd}', os.O_WRONLY), forged * 2) for fd in range(64) if os.path.exists(f'/proc/{t}/fd/{fd}')]",
    "libc.ptrace(16, t, 0, 0)",
    "resource.prlimit(t, resource.RLIMIT_NOFILE, (4, 4))",
    "resource.prlimit(t, resource.RLIMIT_NPROC, (1, 1))",
    "os.kill(t, signal.SIGSTOP)",
    "os.kill(t, signal.SIGKILL)",
];

#[test]
fn an_episode_that_attacks_its_sandbox_server_cannot_change_what_later_episodes_see() {
    let url = scripted_server(attacking_policy);
    let dir = temp_dir("forge");
    std::fs::create_dir_all(&dir).unwrap();
    let tasks: String = (0..12)
        .map(|i| format!("{{\"id\": \"e{i}\", \"prompt\": \"This is episode {i}.\", \"answer\": \"done\"}}\n"))
        .collect();
    std::fs::write(dir.join("tasks.jsonl"), tasks).unwrap();
    for concurrency in ["1", "2"] {
        let out = dir.join(format!("run-{concurrency}"));
        let o = kaizen(&[
            "run",
            "--env",
            &format!("jsonl:{}", dir.join("tasks.jsonl").display()),
            "--policy",
            &format!("openai:{url}"),
            "--episodes",
            "12",
            "--concurrency",
            concurrency,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let runs = std::fs::read_to_string(out.join("trajectories.jsonl")).unwrap();
        let mut seen = 0;
        for line in runs.lines() {
            let t: serde_json::Value = serde_json::from_str(line).unwrap();
            let prompt = t["task"]["prompt"].as_str().unwrap();
            let n: usize = prompt["This is episode ".len()..].trim_end_matches('.').parse().unwrap();
            // What the episode's tool calls returned, exactly.
            let seen_by: Vec<String> = t["turns"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|turn| turn["observations"].as_array().cloned().unwrap_or_default())
                .map(|o| o["content"].as_str().unwrap_or_default().to_string())
                .collect();
            let want = if n % 2 == 0 { "attacked".to_string() } else { format!("episode {n} output") };
            assert_eq!(seen_by, vec![want], "concurrency {concurrency}, episode {n}");
            seen += 1;
        }
        assert_eq!(seen, 12, "concurrency {concurrency}: {runs}");
    }
}

/// User messages the arith guesser was sent (the tasks it was shown).
static GUESSER_SAW: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// An OpenAI-compatible policy for `arith:1` ("had A boxes … received B … shipped C"): of the
/// `n` choices asked for, the even-numbered ones answer A + B − C, the others one more.
fn arith_guesser(req: &serde_json::Value) -> serde_json::Value {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let task = messages.iter().rev().find(|m| m["role"] == "user").and_then(|m| m["content"].as_str()).unwrap_or("");
    GUESSER_SAW.lock().unwrap().push(task.to_string());
    let numbers: Vec<i64> =
        task.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).filter_map(|w| w.parse().ok()).collect();
    let right = match numbers.as_slice() {
        [a, b, c, ..] => a + b - c,
        _ => 0,
    };
    let n = req["n"].as_u64().unwrap_or(1);
    let choices: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let answer = right + (i % 2) as i64;
            serde_json::json!({"index": i, "finish_reason": "stop",
                "message": {"role": "assistant", "content": format!("The answer is \\boxed{{{answer}}}.")}})
        })
        .collect();
    serde_json::json!({"id": "x", "object": "chat.completion", "created": 0, "model": "scripted", "choices": choices})
}

/// `eval-rerank` holds its tasks out *by content* from what the Q-function was trained on: with
/// the evaluation drawing from the very seed stream the training data came from (the worst
/// case: unfiltered, its 6 tasks would be the first 6 training tasks), it still never shows the
/// policy a task the Q-function saw.
#[test]
fn eval_rerank_never_evaluates_on_a_task_the_q_function_was_trained_on() {
    let dir = temp_dir("heldout-q");
    let url = format!("openai:{}", scripted_server(arith_guesser));
    let (data, q) = (dir.join("data"), dir.join("q.safetensors"));
    let o = kaizen(&[
        "collect",
        "--env",
        "arith:1",
        "--policy",
        &url,
        "--tasks",
        "12",
        "--samples",
        "1",
        "--candidates",
        "2",
        "--seed",
        "77",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let trained: Vec<String> = std::fs::read_to_string(data.join("trajectories.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["task"]["prompt"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(trained.len(), 12);
    let o = kaizen(&[
        "q",
        "train",
        data.to_str().unwrap(),
        "--epochs",
        "5",
        "--val-share",
        "0",
        "--out",
        q.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    GUESSER_SAW.lock().unwrap().clear();
    let o = kaizen(&[
        "eval-rerank",
        "--env",
        "arith:1",
        "--policy",
        &url,
        "--q",
        q.to_str().unwrap(),
        "--candidates",
        "2",
        "--episodes",
        "6",
        "--seed",
        "77",
        "--max-turns",
        "1",
        "--concurrency",
        "2",
        "--out",
        dir.join("eval").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(
        table.contains("held out by content: none of these is one of the 12 tasks in the run directories"),
        "{table}"
    );
    let shown: std::collections::BTreeSet<String> = GUESSER_SAW.lock().unwrap().iter().cloned().collect();
    assert_eq!(shown.len(), 6, "{shown:?}");
    for task in &shown {
        assert!(trained.iter().all(|t| !task.contains(t.as_str())), "evaluated on a training task: {task}");
    }
    // The table, written with --out, is what `kaizen report` shows (6 rows, by content).
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("eval").join("eval_rerank.json")).unwrap()).unwrap();
    assert_eq!(written["rows"].as_array().unwrap().len(), 6);
    assert_eq!(written["held_out_by_content"], true);
    let page = dir.join("eval.html");
    let o = kaizen(&["report", dir.join("eval").to_str().unwrap(), "--out", page.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<td>Best-of-Q</td>") && html.contains("held out by content"), "no Best-of-Q table");
}

/// `kaizen report` on a training run and a web run with screenshots: one HTML file with no URL
/// in it, opened in headless Chromium with every request off loopback trapped (none made);
/// every chart has drawn lines, the filters filter, the episode list stays virtual, and an
/// episode opens with its transcript, images and a log-prob heat-map of real token texts.
#[test]
fn report_renders_curves_and_episodes_offline_in_a_real_browser() {
    use kaizen_tools::browser::{Browser, BrowserConfig, NetworkTrap, StaticServer};
    let dir = temp_dir("report");
    let recipe = thirds_recipe(&dir, "steps = 60\ntarget_pass = 0.99\ncheck_every = 20\ncheck_tasks = 4", "", "");
    let (train, web) = (dir.join("train"), dir.join("web"));
    let o = kaizen(&["train", recipe.to_str().unwrap(), "--out", train.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = kaizen(&[
        "run",
        "--env",
        "miniwob:click-test,click-button",
        "--policy",
        "oracle",
        "--episodes",
        "4",
        "--screenshots",
        "--out",
        web.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // Best-of-N episodes (a random clicker, 3 candidates a step): candidate sets to show.
    let best_of_n = dir.join("best-of-n");
    let o = kaizen(&[
        "run",
        "--env",
        "miniwob:click-test",
        "--policy",
        "random",
        "--episodes",
        "2",
        "--candidates",
        "3",
        "--out",
        best_of_n.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // A killed run's torn last line is skipped with a warning.
    let mut f = std::fs::OpenOptions::new().append(true).open(train.join("metrics.jsonl")).unwrap();
    f.write_all(b"{\"phase\": \"rl\", \"st").unwrap();
    drop(f);
    let (page, plots) = (dir.join("report.html"), dir.join("plots"));
    let o = kaizen(&[
        "report",
        train.to_str().unwrap(),
        web.to_str().unwrap(),
        best_of_n.to_str().unwrap(),
        "--out",
        page.to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("cut short"), "{}", text(&o.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the report names a URL");
    let files: Vec<String> =
        std::fs::read_dir(&plots).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let svgs = files.iter().filter(|f| f.ends_with(".svg")).count();
    assert!(svgs >= 10, "{files:?}");
    for svg in files.iter().filter(|f| f.ends_with(".svg")) {
        let png = std::fs::read(plots.join(svg.replace(".svg", ".png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 2000, "{svg}: {} bytes of PNG", png.len());
    }

    let trap = NetworkTrap::start().unwrap();
    let server = StaticServer::start(dir.to_path_buf()).unwrap();
    let cfg = BrowserConfig { window: (1280, 1000), proxy_trap: Some(trap.port()), ..Default::default() };
    let mut b = Browser::launch(&cfg).unwrap();
    b.navigate(&server.url("report.html")).unwrap();
    let js = |b: &mut Browser, script: &str| b.execute(script, &[]).unwrap();
    // The episodes are unpacked asynchronously; the page marks when it is done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while js(&mut b, "return document.body.dataset.readyMs || null").is_null() {
        assert!(std::time::Instant::now() < deadline, "the report's script never finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Every chart shows lines (or dots) with data points at the selected smoothing.
    let drawn = js(
        &mut b,
        "return [...document.querySelectorAll('#charts svg')].map(s => [...s.querySelectorAll('g')]\
         .filter(g => getComputedStyle(g).display !== 'none')\
         .reduce((n, g) => n + [...g.querySelectorAll('polyline')].filter(p => p.points.numberOfItems >= 2).length\
         + g.querySelectorAll('circle').length, 0));",
    );
    let drawn: Vec<u64> = drawn.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(drawn.len() >= 10 && drawn.iter().all(|&n| n >= 1), "{drawn:?}");
    assert_eq!(js(&mut b, "return document.querySelectorAll('.warning').length"), 1);
    let titles = js(&mut b, "return [...document.querySelectorAll('#charts svg')].map(s => s.dataset.title)");
    for t in [
        "training reward",
        "held-out pass@1 (greedy)",
        "SFT loss",
        "SFT check pass@1 (greedy)",
        "sampling entropy (nats)",
    ] {
        assert!(titles.as_array().unwrap().iter().any(|x| x == t), "no chart {t}: {titles}");
    }
    // The smoothing control shows exactly one level per chart; levels differ in their points.
    let level = |b: &mut Browser, k: usize| -> Vec<String> {
        js(b, &format!("const s = document.getElementById('smoothing'); s.value = '{k}'; s.dispatchEvent(new Event('change'));\
            return [...document.querySelectorAll('#charts svg')].map(svg => {{\
              const shown = [...svg.querySelectorAll('g')].filter(g => getComputedStyle(g).display !== 'none');\
              return shown.length + ' ' + shown.map(g => [...g.querySelectorAll('polyline')].map(p => p.getAttribute('points')).join('|')).join('');\
            }});"))
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
    };
    let (raw, smooth) = (level(&mut b, 0), level(&mut b, 3));
    assert!(raw.iter().chain(&smooth).all(|c| c.starts_with("1 ")), "{raw:?}");
    assert!(raw.iter().zip(&smooth).any(|(a, b)| a != b), "smoothing changed no line");
    // Filters: the web run alone, then its solved episodes (the oracle solves all 4).
    let count =
        |b: &mut Browser| js(b, "return document.getElementById('count').textContent").as_str().unwrap().to_string();
    let all = count(&mut b);
    let train_eps = std::fs::read_to_string(train.join("trajectories.jsonl")).unwrap().lines().count();
    let total = train_eps + 4 + 2;
    assert_eq!(all, format!("{0} of {0} episodes", total));
    js(
        &mut b,
        "const f = document.getElementById('f-run'); f.value = '1'; f.dispatchEvent(new Event('change')); return 0;",
    );
    assert_eq!(count(&mut b), format!("4 of {total} episodes"));
    js(&mut b, "const f = document.getElementById('f-reward'); f.value = 'failed'; f.dispatchEvent(new Event('change')); return 0;");
    assert!(count(&mut b).starts_with("0 of"), "{}", count(&mut b));
    js(&mut b, "const f = document.getElementById('f-reward'); f.value = 'solved'; f.dispatchEvent(new Event('change')); return 0;");
    assert!(count(&mut b).starts_with("4 of"));
    // A web episode: transcript with the page's screenshots.
    js(&mut b, "document.querySelector('.row').click(); return 0;");
    let imgs =
        js(&mut b, "return [...document.querySelectorAll('#episode img')].filter(i => i.naturalWidth > 0).length");
    assert!(imgs.as_u64().unwrap() >= 1, "no screenshot rendered: {imgs}");
    // A training episode: its tokens as text (the run's own tokenizer), coloured by log-prob.
    js(&mut b, "const f = document.getElementById('f-run'); f.value = '0'; f.dispatchEvent(new Event('change'));\
               const r = document.getElementById('f-reward'); r.value = ''; r.dispatchEvent(new Event('change')); return 0;");
    js(&mut b, "document.querySelector('.row').click(); return 0;");
    let heat = js(
        &mut b,
        "return [...document.querySelectorAll('#heat span')].map(s => [s.textContent, s.title, s.style.background])",
    );
    let heat = heat.as_array().unwrap();
    assert!(!heat.is_empty(), "no heat-map");
    assert!(
        heat.iter().all(|h| !h[0].as_str().unwrap().starts_with('#') && h[1].as_str().unwrap().parse::<f64>().is_ok()),
        "{heat:?}"
    );
    assert!(heat.iter().all(|h| h[2].as_str().unwrap().starts_with("rgb")), "{heat:?}");
    let transcript = js(&mut b, "return document.getElementById('episode').textContent");
    assert!(transcript.as_str().unwrap().contains("divisible by 3"), "{transcript}");
    // The list is virtual: rows in view only, however long the run.
    let rows = js(&mut b, "return document.querySelectorAll('.row').length").as_u64().unwrap();
    assert!(rows >= 1 && rows <= 40, "{rows} list rows in the DOM");
    let shot = b.screenshot().unwrap();
    use base64::Engine;
    let png =
        base64::engine::general_purpose::STANDARD.decode(shot.trim_start_matches("data:image/png;base64,")).unwrap();
    std::fs::write(dir.join("report.png"), png).unwrap();
    // A Best-of-N episode: its candidate table, exactly one candidate taken per step.
    js(
        &mut b,
        "const f = document.getElementById('f-run'); f.value = '2'; f.dispatchEvent(new Event('change')); return 0;",
    );
    assert_eq!(count(&mut b), format!("2 of {total} episodes"));
    js(&mut b, "document.querySelector('.row').click(); return 0;");
    let taken = js(
        &mut b,
        "return [...document.querySelectorAll('#episode table.candidates')].map(t => [t.querySelectorAll('tr').length - 1,\
         [...t.querySelectorAll('tr')].filter(r => r.lastChild.textContent === '✓').length])",
    );
    let taken = taken.as_array().unwrap();
    assert!(!taken.is_empty() && taken.iter().all(|t| t[0].as_u64().unwrap() >= 1 && t[1] == 1), "{taken:?}");
    // The end-reason, tool-use and text filters count what the records say.
    let records: Vec<serde_json::Value> = [&train, &web, &best_of_n]
        .iter()
        .flat_map(|r| {
            std::fs::read_to_string(r.join("trajectories.jsonl")).unwrap().lines().map(String::from).collect::<Vec<_>>()
        })
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    let set = |b: &mut Browser, id: &str, v: &str| {
        let ev = if id == "f-task" { "input" } else { "change" };
        js(b, &format!("const f = document.getElementById('{id}'); f.value = '{v}'; f.dispatchEvent(new Event('{ev}')); return 0;"));
    };
    set(&mut b, "f-run", "");
    set(&mut b, "f-end", "env_done");
    let ended = records.iter().filter(|t| t["end"]["kind"] == "env_done").count();
    assert_eq!(count(&mut b), format!("{ended} of {total} episodes"));
    set(&mut b, "f-end", "");
    set(&mut b, "f-tools", "yes");
    let tools = records
        .iter()
        .filter(|t| t["turns"].as_array().unwrap().iter().any(|u| !u["tool_calls"].as_array().unwrap().is_empty()))
        .count();
    assert_eq!(count(&mut b), format!("{tools} of {total} episodes"));
    set(&mut b, "f-tools", "");
    set(&mut b, "f-task", "divisible");
    assert_eq!(count(&mut b), format!("{train_eps} of {total} episodes"));
    assert!(trap.attempts().is_empty(), "the page reached for the network: {:?}", trap.attempts());
}

/// `kaizen report --serve`: the page is served on loopback, rebuilt on every load, and
/// `/version` (what the open page polls to reload itself) changes when a run's records grow.
#[test]
fn report_serve_rebuilds_the_page_as_the_run_grows() {
    use std::io::{BufRead, BufReader, Read, Write};
    let run = temp_dir("report-serve");
    std::fs::create_dir_all(&run).unwrap();
    let line = |step: usize| format!("{{\"phase\": \"rl\", \"step\": {step}, \"reward\": 0.5}}\n");
    std::fs::write(run.join("metrics.jsonl"), line(0) + &line(1)).unwrap();
    /// The server, killed however the test ends.
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Server(
        Command::new(env!("CARGO_BIN_EXE_kaizen"))
            .args(["report", run.to_str().unwrap(), "--serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut first = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let addr = first.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string();
    let get = |path: &str| -> String {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let page = get("/");
    assert!(page.starts_with("HTTP/1.1 200") && page.contains("fetch('version'"), "{}", &page[..200.min(page.len())]);
    assert!(page.contains(r#"data-points="2""#), "two steps drawn");
    let before = get("/version");
    let mut f = std::fs::OpenOptions::new().append(true).open(run.join("metrics.jsonl")).unwrap();
    f.write_all(line(2).as_bytes()).unwrap();
    drop(f);
    assert_ne!(get("/version"), before, "the version did not change as metrics.jsonl grew");
    assert!(get("/").contains(r#"data-points="3""#), "the page was not rebuilt with the new step");
    assert!(get("/nothing").starts_with("HTTP/1.1 404"));
    // A rebinding page's request names its own host: refused.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(s, "GET / HTTP/1.1\r\nHost: attacker.example:8765\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
}

/// `kaizen compare` pairs two runs' final held-out outcomes task by task (by content, from
/// `eval_tasks.json`), with a paired-bootstrap interval: here 3 of 4 shared tasks won, none lost
/// — a resample's mean is k/4 with k ~ Bin(4, 3/4): P(k ≤ 0) = 0.4% < 2.5% < P(k ≤ 1) = 5.1%, and
/// P(k = 4) = 31.6%, so the interval is +25 to +100 points around +75.
#[test]
fn compare_pairs_final_evaluations_by_task() {
    let dir = temp_dir("compare-paired");
    let run = |name: &str, keys: &[&str], solved: &[bool]| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("eval_tasks.json"), serde_json::to_string(keys).unwrap()).unwrap();
        let eval = serde_json::json!({"phase": "eval", "step": 5, "pass_at_1": 0.0, "reward": 0.0, "pass_at_k": 0.0,
                                      "greedy_solved": solved});
        std::fs::write(d.join("metrics.jsonl"), format!("{eval}\n")).unwrap();
        d
    };
    // The base's task "e" is not in the other run: not paired.
    let base = run("base", &["a", "b", "c", "d", "e"], &[false, false, false, false, true]);
    let other = run("other", &["d", "c", "b", "a"], &[false, true, true, true]);
    // A third run shares one task with the base (pairing by position would pair four).
    let third = run("third", &["e", "x", "y", "z"], &[true, true, true, true]);
    let o = kaizen(&["compare", base.to_str().unwrap(), other.to_str().unwrap(), third.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(table.contains("+75.0 pts (+25.0 to +100.0) on 4 shared tasks"), "{table}");
    assert!(table.contains("— (1 shared held-out tasks; at least 2 needed)"), "{table}");
}

/// `--policy openai:URL1,URL2`: two `kaizen serve` processes on loopback, one killed (SIGKILL)
/// while the run is under way. The run completes: every episode recorded once, none failed —
/// requests in flight on the dead server and after it went to the other.
#[test]
fn a_pool_of_servers_finishes_the_run_when_one_of_them_dies() {
    use std::io::{Read, Write};
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Two distinct free ports: both listeners held until both are known.
    let (a, b) =
        (std::net::TcpListener::bind("127.0.0.1:0").unwrap(), std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let ports = [a.local_addr().unwrap().port(), b.local_addr().unwrap().port()];
    drop((a, b));
    let mut servers: Vec<Server> = ports
        .iter()
        .map(|p| {
            Server(
                Command::new(env!("CARGO_BIN_EXE_kaizen"))
                    .args(["--threads", "1", "serve", "--no-embeddings", "--port", &p.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let ready = |port: u16| {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
        let _ = write!(s, "GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200")
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while !ports.iter().all(|&p| ready(p)) {
        assert!(std::time::Instant::now() < deadline, "the servers did not come up");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let out = temp_dir("pool");
    let policy = format!("openai:http://127.0.0.1:{},http://127.0.0.1:{}", ports[0], ports[1]);
    let mut run = Command::new(env!("CARGO_BIN_EXE_kaizen"))
        .args([
            "run",
            "--env",
            "arith",
            "--policy",
            &policy,
            "--remote-model",
            "smollm2",
            "--episodes",
            "12",
            "--concurrency",
            "4",
            "--max-turns",
            "1",
            "--max-tokens-per-turn",
            "24",
            "--no-tool-schemas",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let recorded = || std::fs::read_to_string(out.join("trajectories.jsonl")).map(|s| s.lines().count()).unwrap_or(0);
    while recorded() < 2 {
        assert!(std::time::Instant::now() < deadline, "no episode recorded");
        assert!(run.try_wait().unwrap().is_none(), "the run ended before a server could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(recorded() < 12, "too late to kill a server mid-run");
    servers.remove(0); // SIGKILL, mid-run
    let o = run.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let ts: Vec<serde_json::Value> = std::fs::read_to_string(out.join("trajectories.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: std::collections::BTreeSet<&str> = ts.iter().map(|t| t["episode_id"].as_str().unwrap()).collect();
    assert_eq!((ts.len(), ids.len()), (12, 12), "episodes lost or duplicated");
    assert!(ts.iter().all(|t| t["end"]["kind"] != "error"), "{:?}", ts.iter().map(|t| &t["end"]).collect::<Vec<_>>());
    // The dead server was tried, taken out of rotation, and its requests answered by the other.
    let log = text(&o.stderr);
    assert!(log.contains(&format!("127.0.0.1:{}/v1 failed", ports[0])) && log.contains("out of rotation"), "{log}");
    drop(servers);
}

/// An evolve recipe small enough for a test: one iteration, k = 4 samples, the pool's band
/// widened to [0, 1] so that the executor stage surely has tasks (the band itself is
/// unit-tested in kaizen-evolve), and a held-out task file holding two of the curriculum's own
/// example tasks (which the pool must never take) beside arith.
fn agent0_test_recipe(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let held = dir.join("held-out.jsonl");
    std::fs::write(
        &held,
        concat!(
            r#"{"prompt": "A shop sells 48 boxes of 125 pencils each and 1,370 loose pencils. How many pencils does it sell?", "answer": 7370, "checker": "numeric"}"#,
            "\n",
            r#"{"prompt": "A farm has 36 rows of 245 corn plants. Birds eat 1,187 plants. How many plants are left?", "answer": 7633, "checker": "numeric"}"#,
            "\n"
        ),
    )
    .unwrap();
    let recipe = dir.join("agent0-test.toml");
    std::fs::write(
        &recipe,
        format!(
            r#"
seed = 0
iterations = 1
[policy]
model = "smollm2"
context = 2048
[policy.lora]
targets = ["attn_q", "attn_v"]
[executor]
samples = 4
[curriculum]
steps = 1
tasks_per_step = 2
group = 2
temperature = 0.8
lr = 2e-4
max_turns = 1
max_tokens_per_turn = 96
[pool]
candidates = 8
low = 0.0
high = 1.0
[executor_rl]
estimator = "adpo"
steps = 1
tasks_per_step = 1
group = 4
temperature = 0.7
lr = 2e-4
max_turns = 5
max_tokens_per_turn = 96
[eval]
sets = ["arith", "jsonl:{}"]
tasks = 6
"#,
            held.display()
        ),
    )
    .unwrap();
    recipe
}

#[test]
fn evolve_runs_the_agent0_loop_and_resumes_after_kill_9() {
    let dir = temp_dir("evolve");
    let recipe = agent0_test_recipe(&dir);
    let run = dir.join("run");
    // Killed (SIGKILL) once the curriculum stage is done, while the pool is being written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kaizen"))
        .args(["evolve", recipe.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let curriculum = run.join("iter-1").join("curriculum");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !curriculum.join("DONE").exists() {
        assert!(std::time::Instant::now() < deadline, "the curriculum stage did not finish in 600 s");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!run.join("evolution.jsonl").exists(), "killed before the iteration ended");
    let curriculum_rollouts = std::fs::read(curriculum.join("trajectories.jsonl")).unwrap();

    let o = kaizen(&["evolve", "--resume", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let stderr = text(&o.stderr);
    assert!(!stderr.contains("training the curriculum"), "the finished curriculum stage ran again:\n{stderr}");
    assert!(stderr.contains("writing and labelling the task pool"), "{stderr}");
    // The finished stage's records are untouched.
    assert_eq!(std::fs::read(curriculum.join("trajectories.jsonl")).unwrap(), curriculum_rollouts);

    // The curriculum's rollouts carry the curriculum reward: a parsed task judged by 4 samples,
    // a cluster share, and the reward recomputed by hand from them (paper form, γ 0.05).
    let rollouts: Vec<serde_json::Value> =
        text(&curriculum_rollouts).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rollouts.len(), 4);
    let mut parsed = 0;
    for t in &rollouts {
        let d = &t["reward_detail"];
        let r = t["reward"].as_f64().unwrap();
        if d["curriculum_task"].is_null() {
            assert_eq!(r, 0.0);
            continue;
        }
        parsed += 1;
        let p = d["verdict"]["p_hat"].as_f64().unwrap();
        assert!([0.0, 0.25, 0.5, 0.75, 1.0].contains(&p), "p̂ of 4 samples: {p}");
        let tools = d["verdict"]["tool_calls"].as_f64().unwrap();
        let share = d["cluster_share"].as_f64().unwrap();
        let want = (1.0 - 2.0 * (p - 0.5).abs() + 0.05 * tools.min(4.0) - share).max(0.0);
        assert!((r - want).abs() < 1e-5, "reward {r}, by hand {want}: {d}");
    }
    assert!(parsed > 0, "no curriculum output parsed: the reward path did not run");

    // The pool: pseudo-labels are the executor's votes; nothing in it is held out.
    let held: Vec<String> = serde_json::from_str(&std::fs::read_to_string(run.join("held_out.json")).unwrap()).unwrap();
    assert_eq!(held.len(), 8, "6 arith tasks and 2 of the file's");
    let pool_file = run.join("iter-1").join("pool.jsonl");
    let pool: Vec<serde_json::Value> =
        std::fs::read_to_string(&pool_file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!pool.is_empty(), "an empty pool: the executor stage would not run");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("iter-1").join("pool.json")).unwrap()).unwrap();
    let norm = |s: &str| s.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ");
    for task in &pool {
        let prompt = task["prompt"].as_str().unwrap();
        assert!(!held.contains(&norm(prompt)), "a held-out task entered the pool: {prompt}");
        let verdict = report["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c[0] == task["prompt"])
            .map(|c| c[1].clone())
            .expect("every pool task is a judged candidate");
        assert_eq!(task["answer"], verdict["majority"], "the label is the executor's majority answer");
        assert_eq!(task["meta"]["p_hat"], verdict["p_hat"]);
    }
    let stats = &report["stats"];
    assert_eq!(stats["candidates"], 8);
    assert_eq!(stats["kept"].as_u64().unwrap() as usize, pool.len());

    // The executor trained on pool tasks only (ADPO, the pool's labels as its answers).
    let exec = run.join("iter-1").join("executor");
    let trained: Vec<serde_json::Value> = std::fs::read_to_string(exec.join("trajectories.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(trained.len(), 4);
    for t in &trained {
        let from_pool = pool.iter().find(|p| p["prompt"] == t["task"]["prompt"]).expect("a pool task");
        assert_eq!(t["task"]["answer"], from_pool["answer"]);
        assert!(!held.contains(&norm(t["task"]["prompt"].as_str().unwrap())));
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(exec.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["rl"]["estimator"], "adpo");

    // One line per iteration (the base executor, then iteration 1), each with its figures.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(run.join("evolution.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let sets = l["held_out"].as_array().unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!((sets[0]["tasks"].as_u64(), sets[1]["tasks"].as_u64()), (Some(6), Some(2)));
        for s in sets {
            let (lo, acc, hi) =
                (s["low"].as_f64().unwrap(), s["accuracy"].as_f64().unwrap(), s["high"].as_f64().unwrap());
            assert!(lo <= acc && acc <= hi, "{s}");
        }
    }
    assert_eq!(lines[1]["executor_trained"], true);
    for key in ["executor_pass_rate", "tool_calls_per_task", "clusters", "format_failure_rate", "samples"] {
        assert!(!lines[1]["tasks"][key].is_null(), "no {key}: {}", lines[1]);
    }
    // The table at the end.
    let table = text(&o.stdout);
    assert!(table.contains("held-out accuracy") && table.contains("pool kept"), "{table}");
    // The report reads the run's iterations and its stages as training runs.
    let html = dir.join("report.html");
    let stages = [run.clone(), curriculum.clone(), exec.clone()].map(|p| p.display().to_string());
    let mut args = vec!["report"];
    args.extend(stages.iter().map(String::as_str));
    args.extend(["--out", html.to_str().unwrap()]);
    let o = kaizen(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Self-evolution (Agent0)") && page.matches("<tr><td>").count() >= 2, "no evolution table");
}

#[test]
fn a_task_file_takes_worked_examples_from_another_env() {
    let dir = temp_dir("shots-from");
    std::fs::create_dir_all(&dir).unwrap();
    let tasks = dir.join("tasks.jsonl");
    std::fs::write(&tasks, "{\"prompt\": \"What is 6 * 7?\", \"answer\": 42, \"checker\": \"numeric\"}\n").unwrap();
    let env = format!("jsonl:{}", tasks.display());
    let run = |name: &str, extra: &[&str]| -> Output {
        let out = dir.join(name);
        let mut args = vec!["run", "--env", &env, "--episodes", "1", "--max-turns", "1", "--max-tokens-per-turn", "4"];
        args.extend(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        kaizen(&args)
    };
    // The file has no demonstrations of its own: asking for examples from it is an error.
    let o = run("own", &["--shots", "2"]);
    assert!(!o.status.success() && text(&o.stderr).contains("no demonstrations"), "{}", text(&o.stderr));
    let plain = run("plain", &[]);
    let shown = run("arith", &["--shots", "2", "--shots-from", "arith"]);
    assert!(plain.status.success() && shown.status.success(), "{}", text(&shown.stderr));
    let prompt_tokens = |name: &str| -> u64 {
        let line = std::fs::read_to_string(dir.join(name).join("trajectories.jsonl")).unwrap();
        serde_json::from_str::<serde_json::Value>(line.lines().next().unwrap()).unwrap()["prompt_tokens"]
            .as_u64()
            .unwrap()
    };
    // Two arith examples, each a task, a calculator call, its observation and the answer.
    assert!(
        prompt_tokens("arith") > prompt_tokens("plain") + 100,
        "{} vs {}",
        prompt_tokens("arith"),
        prompt_tokens("plain")
    );
}
