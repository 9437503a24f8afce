//! Episodes with the real SmolLM2, the real `arith` env and the real tools.

use kaizen_core::{Env, Message, Role};
use kaizen_envs::Arith;
use kaizen_models::{LocalLlm, WeightFormat};
use kaizen_rollout::{
    observation_segment, run_dir, run_episode, run_local, Agent, EpisodeConfig, Job, RunDir, RunSummary,
};
use kaizen_tools::ToolRegistry;
use std::sync::OnceLock;

fn llm() -> &'static LocalLlm {
    static L: OnceLock<LocalLlm> = OnceLock::new();
    L.get_or_init(|| LocalLlm::load_installed("smollm2", WeightFormat::Q8_0).expect("run scripts/setup.sh"))
}

#[test]
fn episodes_are_token_exact_and_replay_to_their_logprobs() {
    let env = Arith::mixed();
    let tools = ToolRegistry::standard();
    let cfg =
        EpisodeConfig { temperature: 0.8, max_tokens_per_turn: 96, max_episode_tokens: 256, ..Default::default() };
    for (i, task) in env.tasks(3, 3).iter().enumerate() {
        let t = run_episode(&Agent::Local(llm()), &env, &tools, task, &cfg, 100 + i as u64, &format!("e{i}"));
        assert_eq!(t.token_ids.len(), t.loss_mask.len());
        assert_eq!(t.token_ids.len(), t.logprobs.len());
        assert!(t.loss_mask[..t.prompt_tokens].iter().all(|&m| m == 0));
        assert_eq!(t.loss_mask.iter().filter(|&&m| m == 1).count(), t.generated_tokens());
        assert!(t.reward == 0.0 || t.reward == 1.0);
        assert!(t.turns.len() >= 1 && t.turns.len() <= cfg.max_turns);
        assert_replays(&t, cfg.temperature);
    }
}

/// Teacher-forced scoring of the recorded tokens gives back the stored log-probs.
fn assert_replays(t: &kaizen_core::Trajectory, temperature: f32) {
    let scored = llm()
        .score_trajectory(&t.token_ids, &t.loss_mask, temperature, t.shared_prefix_tokens, &t.token_pictures)
        .unwrap();
    let worst = scored.iter().zip(&t.logprobs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-3, "episode {}: max |Δ| = {worst}", t.episode_id);
}

fn echo_env() -> kaizen_envs::JsonlEnv {
    kaizen_envs::JsonlEnv::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/echo_tool_calls.jsonl"
    )))
    .unwrap()
}

#[test]
fn concurrent_episodes_batch_together_and_equal_one_at_a_time() {
    // Tasks that make SmolLM2 call tools (it repeats the call it is shown), so episodes have
    // several turns and pause for tools while others decode.
    let env = echo_env();
    let tools = ToolRegistry::standard();
    let cfg = EpisodeConfig { temperature: 0.7, max_turns: 3, max_tokens_per_turn: 48, ..Default::default() };
    let jobs: Vec<Job> = env
        .tasks(0, 4)
        .into_iter()
        .enumerate()
        .map(|(i, task)| Job::new(task, 40 + i as u64, format!("{i}")))
        .collect();
    let run = |slots| {
        let mut out = Vec::new();
        let stats = run_local(llm(), &env, &tools, jobs.clone(), &cfg, slots, &mut |t| out.push(t));
        out.sort_by(|a, b| a.episode_id.cmp(&b.episode_id));
        (out, stats)
    };
    let (alone, _) = run(1);
    let (together, stats) = run(3);
    println!("mean batch {:.2}, overhead {:.2}%", stats.mean_batch(), 100.0 * stats.overhead());
    assert!(stats.mean_batch() > 1.5, "episodes should decode together: {stats:?}");
    assert_eq!(together.len(), 4);
    let mut with_tools = 0;
    for (a, b) in alone.iter().zip(&together) {
        let obs = |t: &kaizen_core::Trajectory| {
            t.turns.iter().flat_map(|u| u.observations.iter().map(|o| o.content.clone())).collect::<Vec<_>>()
        };
        assert_eq!(obs(a), obs(b), "episode {}", a.episode_id);
        assert_eq!(a.token_ids, b.token_ids, "episode {}", a.episode_id);
        assert_eq!(a.logprobs, b.logprobs, "episode {}", a.episode_id);
        for (x, y) in a.turns.iter().zip(&b.turns) {
            assert_eq!((&x.text, &x.tool_calls, x.generated_tokens), (&y.text, &y.tool_calls, y.generated_tokens));
            let contents = |t: &kaizen_core::Turn| t.observations.iter().map(|o| o.content.clone()).collect::<Vec<_>>();
            assert_eq!(contents(x), contents(y));
        }
        assert_eq!(a.reward, b.reward);
        with_tools += usize::from(b.tool_calls() > 0 && b.turns.len() > 1);
        assert_replays(b, cfg.temperature);
    }
    assert!(with_tools >= 2, "expected multi-turn tool episodes, got {with_tools}");
}

#[test]
fn observation_segment_is_the_templates_own_text() {
    let history = vec![Message::system("s"), Message::user("u"), Message::assistant("<tool_call>{}</tool_call>")];
    let seg = observation_segment(llm(), &history, &[], &[Message::new(Role::Tool, "391")]).unwrap();
    assert_eq!(seg, "<|im_end|>\n<|im_start|>tool\n391<|im_end|>\n<|im_start|>assistant\n");
    assert!(observation_segment(llm(), &history[..2], &[], &[]).is_err());
}

#[test]
fn run_dir_appends_loads_and_summarises() {
    let env = Arith::level(2).unwrap();
    let tools = ToolRegistry::standard();
    let cfg = EpisodeConfig { max_tokens_per_turn: 48, max_episode_tokens: 96, ..Default::default() };
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-run-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    let mut run = RunDir::create(&dir, &serde_json::json!({"env": env.name()})).unwrap();
    let mut all = Vec::new();
    for (i, task) in env.tasks(1, 2).iter().enumerate() {
        let t = run_episode(&Agent::Local(llm()), &env, &tools, task, &cfg, i as u64, &format!("e{i}"));
        run.append(&t).unwrap();
        all.push(t);
    }
    let loaded = run_dir::load(&dir).unwrap();
    for (a, b) in loaded.iter().zip(&all) {
        let (ja, jb) = (serde_json::to_value(a).unwrap(), serde_json::to_value(b).unwrap());
        if ja != jb {
            for (k, v) in ja.as_object().unwrap() {
                if jb[k] != *v {
                    panic!(
                        "field {k} differs after reload:\n{}\nvs\n{}",
                        v.to_string().chars().take(400).collect::<String>(),
                        jb[k].to_string().chars().take(400).collect::<String>()
                    );
                }
            }
        }
    }
    assert_eq!(loaded, all);
    // A record torn by a crash mid-write is skipped, the rest kept.
    std::fs::write(
        dir.join("trajectories.jsonl"),
        format!("{}\n{{\"schema_version\": 1, \"epis", serde_json::to_string(&all[0]).unwrap()),
    )
    .unwrap();
    assert_eq!(run_dir::load(&dir).unwrap(), vec![all[0].clone()]);
    // A complete last line (ended by a newline, or whole JSON) that is not a trajectory was not
    // torn: it is an error naming the line, not skipped.
    let first = serde_json::to_string(&all[0]).unwrap();
    for last in ["{\"schema_version\": 1, \"epis\n", "{\"not\": \"a trajectory\"}"] {
        std::fs::write(dir.join("trajectories.jsonl"), format!("{first}\n{last}")).unwrap();
        let err = run_dir::load(&dir).unwrap_err();
        assert!(err.contains("trajectories.jsonl line 2"), "{last:?}: {err}");
    }
    // Invalid UTF-8 names the file and the line.
    std::fs::write(dir.join("trajectories.jsonl"), [first.as_bytes(), b"\n{\"x\": \"\xfe\"}\n"].concat()).unwrap();
    let err = run_dir::load(&dir).unwrap_err();
    assert!(err.contains("trajectories.jsonl line 2: not valid UTF-8"), "{err}");
    // A crash inside a multi-byte character of the last line: torn, the rest kept.
    std::fs::write(dir.join("trajectories.jsonl"), [first.as_bytes(), b"\n{\"text\": \"\xc3"].concat()).unwrap();
    assert_eq!(run_dir::load(&dir).unwrap(), vec![all[0].clone()]);
    assert!(RunDir::create(&dir, &serde_json::json!({})).is_err(), "an existing run is not overwritten");
    // Parquet: the same episodes, column by column.
    let pq = dir.join(kaizen_rollout::PARQUET_FILE);
    kaizen_rollout::write_parquet(&all, &pq).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&pq).unwrap()).unwrap();
    let rows: Vec<parquet::record::Row> =
        parquet::file::reader::FileReader::get_row_iter(&reader, None).unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2);
    for (row, t) in rows.iter().zip(&all) {
        let json = row.to_json_value();
        assert_eq!(json["episode_id"], t.episode_id);
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["reward"].as_f64().unwrap() as f32, t.reward);
        let ids: Vec<u32> = json["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(ids, t.token_ids);
        let mask: Vec<u8> = json["loss_mask"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u8).collect();
        assert_eq!(mask, t.loss_mask);
        assert_eq!(json["logprobs"].as_array().unwrap().len(), t.logprobs.len());
        let back: kaizen_core::Trajectory = serde_json::from_str(json["trajectory_json"].as_str().unwrap()).unwrap();
        assert_eq!(&back, t);
    }
    let s = RunSummary::of(&all);
    assert_eq!(s.episodes, 2);
    assert!(s.episode_tokens_per_second > 0.0 && (0.0..=1.0).contains(&s.success_rate));
}

#[test]
fn remote_policy_episodes_match_local_ones() {
    use kaizen_models::OpenAiClient;
    use kaizen_serve::{AppState, ServerConfig};
    // kaizen serve on loopback with the same model, driven through the OpenAI client.
    static LLM: OnceLock<std::sync::Arc<LocalLlm>> = OnceLock::new();
    let shared = LLM
        .get_or_init(|| std::sync::Arc::new(LocalLlm::load_installed("smollm2", WeightFormat::Q8_0).unwrap()))
        .clone();
    let state = AppState::new(ServerConfig::default(), Some(shared), None).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap())).unwrap();
            kaizen_serve::serve(listener, state).await.unwrap();
        });
    });
    let client = OpenAiClient::new(&rx.recv().unwrap(), "smollm2").unwrap();
    let env = Arith::level(1).unwrap();
    let tools = ToolRegistry::standard();
    let cfg = EpisodeConfig { max_tokens_per_turn: 64, max_episode_tokens: 128, ..Default::default() };
    let task = &env.tasks(5, 1)[0];
    let remote = run_episode(&Agent::Remote(&client), &env, &tools, task, &cfg, 9, "r");
    let local = run_episode(&Agent::Local(llm()), &env, &tools, task, &cfg, 9, "l");
    assert!(remote.token_ids.is_empty(), "remote episodes carry no token ids");
    assert!(!matches!(remote.end, kaizen_core::EpisodeEnd::Error { .. }), "{:?}", remote.end);
    assert_eq!(remote.turns.len(), local.turns.len());
    for (r, l) in remote.turns.iter().zip(&local.turns) {
        assert_eq!(r.text, l.text);
    }
    assert_eq!(remote.reward, local.reward);
}

/// AXPO's resampling: an episode continued from a prefix of another keeps that prefix token
/// for token (earlier turns replayed with their recorded observations), and greedy decoding
/// from it reproduces the source exactly.
#[test]
fn episodes_continue_from_a_prefix_of_another() {
    let env = echo_env();
    let tools = ToolRegistry::standard();
    let cfg = EpisodeConfig { temperature: 0.0, max_turns: 3, max_tokens_per_turn: 48, ..Default::default() };
    let mut sources = Vec::new();
    let jobs = env.tasks(0, 4).into_iter().enumerate().map(|(i, t)| Job::new(t, 7 + i as u64, format!("{i}")));
    run_local(llm(), &env, &tools, jobs, &cfg, 4, &mut |t| sources.push(t));
    // A source with two tool-calling turns; the prefix ends inside the second.
    let src = sources.iter().find(|t| t.turns.len() >= 2 && !t.turns[1].tool_calls.is_empty());
    let src = std::sync::Arc::new(src.expect("SmolLM2 repeats the shown tool call").clone());
    let second_turn = (src.prompt_tokens..src.token_ids.len())
        .filter(|&i| src.loss_mask[i] == 1 && src.loss_mask[i - 1] == 0)
        .nth(1)
        .unwrap();
    let end = second_turn + 3;
    let mut out = Vec::new();
    let jobs = (0..2).map(|k| Job::continuing(src.clone(), end, 500 + k, format!("c{k}")));
    run_local(llm(), &env, &tools, jobs, &cfg, 2, &mut |t| out.push(t));
    for c in &out {
        assert!(!matches!(c.end, kaizen_core::EpisodeEnd::Error { .. }), "{:?}", c.end);
        assert_eq!(c.token_ids[..end], src.token_ids[..end]);
        assert_eq!(c.turns[0], src.turns[0]);
        // Greedy from the same point: the same episode, and it replays to its log-probs (the
        // replayed history is fed on the schedule it was generated on).
        assert_eq!(c.token_ids, src.token_ids);
        assert_replays(c, cfg.temperature);
        assert_eq!(c.turns.len(), src.turns.len());
        assert_eq!(c.turns[1].text, src.turns[1].text);
    }
    // Sampling from the prefix gives other continuations that still start with it.
    let hot = EpisodeConfig { temperature: 1.2, ..cfg.clone() };
    let mut sampled = Vec::new();
    let jobs = (0..3).map(|k| Job::continuing(src.clone(), end, 900 + k, format!("h{k}")));
    run_local(llm(), &env, &tools, jobs, &hot, 3, &mut |t| sampled.push(t));
    assert!(sampled.iter().all(|c| c.token_ids[..end] == src.token_ids[..end]));
    assert!(sampled.iter().any(|c| c.token_ids != src.token_ids), "temperature 1.2 changed nothing");
    // Their own tokens replay to their log-probs; the forced ones carry the greedy source's.
    for c in &sampled {
        let scored = llm()
            .score_trajectory(&c.token_ids, &c.loss_mask, hot.temperature, c.shared_prefix_tokens, &c.token_pictures)
            .unwrap();
        let worst = scored[end..].iter().zip(&c.logprobs[end..]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-3, "episode {}: max |Δ| = {worst}", c.episode_id);
    }
}

/// Worked examples are the env's demonstrations of other tasks with their tools really run,
/// and with three of them in front, SmolLM2 — which never calls a tool on its own — writes
/// calculator calls, and its episodes stay token-exact.
#[test]
fn worked_examples_teach_smollm2_the_tool_call_format() {
    let env = Arith::mixed();
    let tools = ToolRegistry::standard();
    let shots = kaizen_rollout::few_shot(&env, &tools, 3).unwrap();
    let roles: Vec<Role> = shots.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::User, Role::Assistant, Role::Tool, Role::Assistant].repeat(3));
    for (i, task) in env.tasks(kaizen_rollout::episode::SHOT_SEED, 3).iter().enumerate() {
        assert_eq!(shots[4 * i].content, task.prompt);
        // The calculator's real result is the task's answer.
        assert!(task.reward(Some(&shots[4 * i + 2].content)) == 1.0, "{} vs {}", shots[4 * i + 2].content, task.answer);
    }
    let tool_use = |cfg: &EpisodeConfig| {
        let jobs = env.tasks(0, 6).into_iter().enumerate().map(|(i, t)| Job::new(t, i as u64, format!("{i}")));
        let mut done = Vec::new();
        run_local(llm(), &env, &tools, jobs, cfg, 6, &mut |t| done.push(t));
        done.iter().for_each(|t| assert_replays(t, cfg.temperature));
        done.iter().filter(|t| t.turns.first().is_some_and(|turn| !turn.tool_calls.is_empty())).count()
    };
    let bare = EpisodeConfig { max_turns: 2, max_tokens_per_turn: 64, ..Default::default() };
    let (without, with) = (tool_use(&bare), tool_use(&EpisodeConfig { shots, ..bare.clone() }));
    assert!(with >= 3 && with > without, "episodes calling a tool: {with}/6 with examples, {without}/6 without");
}

#[test]
fn without_tool_schemas_the_prompt_is_short_and_the_tools_still_run() {
    // A demonstration (scripted calculator call) with and without the schemas in the prompt.
    let (env, tools) = (Arith::level(2).unwrap(), ToolRegistry::standard());
    let task = env.task(7, 0);
    let turns = env.demonstration(&task).unwrap();
    let demo = |cfg: &EpisodeConfig| {
        kaizen_rollout::demonstration(llm(), &env, &tools, Job::new(task.clone(), 0, "d"), &turns, cfg)
    };
    let (full, bare) =
        (demo(&EpisodeConfig::default()), demo(&EpisodeConfig { tool_schemas: false, ..Default::default() }));
    let prompt = |t: &kaizen_core::Trajectory| llm().tokenizer.decode(&t.token_ids[..t.prompt_tokens]);
    assert!(prompt(&full).contains("\"calculator\""), "the schemas are in the full prompt");
    assert!(!prompt(&bare).contains("<tools>"), "{}", prompt(&bare));
    assert!(
        bare.prompt_tokens * 3 < full.prompt_tokens,
        "{} vs {} prompt tokens",
        bare.prompt_tokens,
        full.prompt_tokens
    );
    // The calculator ran and the demonstration is solved either way.
    assert_eq!((full.tool_calls(), bare.tool_calls()), (1, 1));
    assert_eq!((full.reward, bare.reward), (1.0, 1.0));
}

#[test]
fn the_prefix_cache_changes_the_time_never_a_token_or_a_log_prob() {
    let env = Arith::mixed();
    let tools = ToolRegistry::standard();
    let shots = kaizen_rollout::few_shot(&env, &tools, 2).unwrap();
    let cfg = EpisodeConfig {
        temperature: 0.8,
        max_turns: 3,
        max_tokens_per_turn: 64,
        max_episode_tokens: 192,
        shots,
        ..Default::default()
    };
    // Three tasks, each sampled three times (as a GRPO group or Agent0's k samples are), in
    // order.
    let jobs: Vec<Job> = env
        .tasks(11, 3)
        .into_iter()
        .flat_map(|t| [t.clone(), t.clone(), t])
        .enumerate()
        .map(|(i, t)| Job::new(t, 40 + i as u64, format!("p{i}")))
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
    let run = |llm: &LocalLlm| {
        let mut out = Vec::new();
        let stats = run_local(llm, &env, &tools, jobs.clone(), &cfg, 3, &mut |t| out.push(t));
        kaizen_rollout::in_job_order(&mut out, &ids);
        (out, stats)
    };
    // Models of their own (the tests share `llm()`'s cache): one with the cache off.
    let load = || LocalLlm::load_installed("smollm2", WeightFormat::Q8_0).unwrap();
    let cold = load();
    *cold.prefixes.lock().unwrap() = kaizen_models::runtime::prefix_cache::PrefixCache::new(0);
    let (off, off_stats) = run(&cold);
    let warm = load();
    let (on, on_stats) = run(&warm);

    // The cache ran: the first episode computed the opening and each task's first sample its
    // whole prompt (the engine knows two more samples follow), so the other tasks' first
    // samples copied the opening and every later sample the whole prompt, only sampling.
    let p = on[0].shared_prefix_tokens;
    assert!(p > 0 && p < on[0].prompt_tokens, "shared prefix {p} of a {}-token prompt", on[0].prompt_tokens);
    assert!(on.iter().all(|t| t.shared_prefix_tokens == p));
    let prompts: usize = on.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(_, t)| t.prompt_tokens).sum();
    let s = on_stats.prefix;
    assert_eq!((s.lookups, s.hits, s.prompt_hits, s.tokens_saved), (9, 8, 6, 2 * p + prompts));
    assert_eq!((off_stats.prefix.lookups, off_stats.prefix.hits), (9, 0));
    assert!(on.iter().map(|t| t.generated_tokens()).sum::<usize>() > 6, "the episodes wrote something");
    // Token for token, log-prob for log-prob (bit for bit) the same episodes.
    for (a, b) in on.iter().zip(&off) {
        assert_eq!(a.token_ids, b.token_ids, "episode {}", a.episode_id);
        let bits = |t: &kaizen_core::Trajectory| t.logprobs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(a), bits(b), "episode {}", a.episode_id);
        assert_eq!(a.final_answer, b.final_answer);
        // Episodes whose prefix came from the cache replay to their log-probs.
        assert_replays(a, cfg.temperature);
    }
}

/// Best-of-N on a local model continues the episode's own tokens: each turn's executed
/// candidate is in the token record with the log-probs it was sampled with, so the episode
/// replays to them like any other; the recorded candidate set marks the executed one, whose
/// total log-prob is the sum over that turn's written tokens (and, under `MaxLogprob`, the
/// largest of the set).
#[test]
fn best_of_n_on_a_local_model_is_token_exact() {
    use kaizen_rollout::rerank::{run_best_of_n, Selector};
    let env = Arith::mixed();
    let tools = ToolRegistry::standard();
    let shots = kaizen_rollout::few_shot(&env, &tools, 1).unwrap();
    let cfg = EpisodeConfig {
        temperature: 0.9,
        max_tokens_per_turn: 64,
        max_episode_tokens: 192,
        shots,
        ..Default::default()
    };
    let mut sets_with_choice = 0;
    for (i, task) in env.tasks(4, 2).into_iter().enumerate() {
        let job = Job::new(task, 300 + i as u64, format!("b{i}"));
        let t = run_best_of_n(&Agent::Local(llm()), &env, &tools, job, &cfg, 3, &Selector::MaxLogprob);
        assert!(!matches!(t.end, kaizen_core::EpisodeEnd::Error { .. }), "{:?}", t.end);
        assert!(t.prompt_tokens > 0 && t.token_ids.len() > t.prompt_tokens, "no token record");
        assert_eq!((t.token_ids.len(), t.loss_mask.len()), (t.logprobs.len(), t.token_ids.len()));
        assert_replays(&t, cfg.temperature);
        // The written runs of the token record, one per turn.
        let mut runs: Vec<f32> = Vec::new();
        let mut inside = false;
        for (m, lp) in t.loss_mask.iter().zip(&t.logprobs) {
            match (*m == 1, inside) {
                (true, false) => runs.push(*lp),
                (true, true) => *runs.last_mut().unwrap() += lp,
                _ => {}
            }
            inside = *m == 1;
        }
        assert_eq!(runs.len(), t.turns.len());
        for (turn, written) in t.turns.iter().zip(&runs) {
            let chosen: Vec<_> = turn.candidates.iter().filter(|c| c.chosen).collect();
            assert_eq!(chosen.len(), 1, "one executed candidate per turn");
            assert!((chosen[0].logprob - written).abs() < 1e-3, "{} vs {written}", chosen[0].logprob);
            assert!(turn.candidates.iter().all(|c| c.logprob <= chosen[0].logprob));
            assert!(turn.text.starts_with(chosen[0].text.trim()) || chosen[0].text.contains(turn.text.trim()));
            sets_with_choice += (turn.candidates.len() > 1) as usize;
        }
    }
    assert!(sets_with_choice > 0, "every step proposed a single distinct candidate: nothing was selected");
}

/// Agent0-VL's repair: an episode re-derived from the start of a step replays the steps before
/// it token for token, then opens that step with the correction — in the record with loss mask
/// 0, shown but not written — and the policy's continuation replays to its log-probs like any
/// other episode. A note anywhere but at a step's start is refused, recorded as an error.
#[test]
fn a_repair_opens_the_step_with_its_note_and_stays_token_exact() {
    let env = echo_env();
    let tools = ToolRegistry::standard();
    let cfg = EpisodeConfig { temperature: 0.0, max_turns: 3, max_tokens_per_turn: 48, ..Default::default() };
    let mut sources = Vec::new();
    let jobs = env.tasks(0, 4).into_iter().enumerate().map(|(i, t)| Job::new(t, 7 + i as u64, format!("{i}")));
    run_local(llm(), &env, &tools, jobs, &cfg, 4, &mut |t| sources.push(t));
    let src = sources.iter().find(|t| t.turns.len() >= 2).expect("SmolLM2 repeats the shown tool call");
    let src = std::sync::Arc::new(src.clone());
    let start = src.written_runs()[1].start;
    let note = "(Correction: echo the word kaizen)\n";
    let shown = llm().tokenizer.encode(note).unwrap();
    let mut out = Vec::new();
    let jobs = [
        Job::repairing(src.clone(), start, note.into(), 31, "r"),
        Job::repairing(src.clone(), start + 1, note.into(), 31, "bad"),
    ];
    run_local(llm(), &env, &tools, jobs, &cfg, 2, &mut |t| out.push(t));
    kaizen_rollout::in_job_order(&mut out, &["r".to_string(), "bad".to_string()]);
    let r = &out[0];
    assert!(!matches!(r.end, kaizen_core::EpisodeEnd::Error { .. }), "{:?}", r.end);
    assert_eq!(r.token_ids[..start], src.token_ids[..start]);
    assert_eq!(r.turns[0], src.turns[0]);
    assert_eq!(r.token_ids[start..start + shown.len()], shown[..]);
    assert!(r.loss_mask[start..start + shown.len()].iter().all(|&m| m == 0));
    assert_eq!(r.loss_mask[start + shown.len()], 1, "the policy writes right after the note");
    assert!(r.turns[1].text.starts_with(note), "{}", r.turns[1].text);
    let written = r.written_runs()[1].len();
    assert_eq!(r.turns[1].generated_tokens, written);
    assert_replays(r, cfg.temperature);
    assert!(
        matches!(&out[1].end, kaizen_core::EpisodeEnd::Error { message } if message.contains("where a turn begins")),
        "{:?}",
        out[1].end
    );
}
