//! Pictures through an episode, exactly: a task's picture and the picture a tool call returns
//! reach the policy over the OpenAI wire bit-identically, and the run directory stores each
//! once and gives the same bytes back. The policy is a stand-in vision server on a real socket
//! (kaizen's OpenAI client talks to it over HTTP); it answers with the content hash of the
//! picture it was sent, which the task's checker compares with the hash computed here.

use image::{Rgb, RgbImage};
use kaizen_core::image::content_hash;
use kaizen_core::openai::ChatCompletionRequest;
use kaizen_core::{Checker, Env, EnvSession, Observation, Role, SessionStatus, Task, ToolCall, ToolSpec};
use kaizen_models::OpenAiClient;
use kaizen_rollout::{run_dir, run_episode, Agent, EpisodeConfig, RunDir};
use kaizen_tools::image::{png_url, ImageTools};
use kaizen_tools::ToolRegistry;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

/// A 48×32 picture whose pixel (x, y) is (5x, 7y, x ^ y).
fn scene() -> RgbImage {
    RgbImage::from_fn(48, 32, |x, y| Rgb([(5 * x) as u8, (7 * y) as u8, (x ^ y) as u8]))
}

/// The box [16, 8, 40, 24) of `scene()`, cut out here by hand.
fn crop_by_hand() -> RgbImage {
    let s = scene();
    RgbImage::from_fn(24, 16, |x, y| *s.get_pixel(16 + x, 8 + y))
}

/// One task: its picture is `scene()`, its answer the content hash of the crop.
struct Picture;

struct Scene(ImageTools);

impl EnvSession for Scene {
    fn prompt(&self) -> String {
        "Crop [16, 8, 40, 24] and give the crop's content hash.".into()
    }
    fn tools(&self) -> Vec<ToolSpec> {
        self.0.specs()
    }
    fn act(&mut self, call: &ToolCall) -> Observation {
        self.0.act(call)
    }
    fn status(&self) -> SessionStatus {
        SessionStatus::Running
    }
    fn unfinished_reward(&self) -> f32 {
        0.0
    }
}

impl Env for Picture {
    fn name(&self) -> &str {
        "picture"
    }
    fn system_prompt(&self) -> String {
        "Answer as \\boxed{ANSWER}.".into()
    }
    fn tool_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn tasks(&self, _seed: u64, n: usize) -> Vec<Task> {
        let t = Task {
            id: "p".into(),
            prompt: "Crop [16, 8, 40, 24] and give the crop's content hash.".into(),
            answer: content_hash(&png_url(&crop_by_hand()).unwrap()),
            checker: Checker::Exact,
            meta: serde_json::Value::Null,
            images: vec![png_url(&scene()).unwrap()],
        };
        vec![t; n]
    }
    fn open_session(&self, _: &Task) -> Option<Result<Box<dyn EnvSession>, String>> {
        Some(Ok(Box::new(Scene(ImageTools::new(scene())))))
    }
}

/// What the stand-in server was sent: per request, (role, content hash) of every image part.
type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A vision "model" over HTTP: with no tool turn yet it calls `crop`; after one it answers with
/// the content hash of the picture the tool turn carried.
fn serve_stand_in() -> (String, Seen) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Default::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let req: ChatCompletionRequest = serde_json::from_slice(&body).unwrap();
            let messages = req.kaizen_messages().unwrap();
            let images: Vec<(String, String)> = messages
                .iter()
                .flat_map(|m| m.images.iter().map(move |u| (m.role.as_str().to_string(), content_hash(u))))
                .collect();
            let text = match messages.iter().rev().find(|m| m.role == Role::Tool) {
                None => kaizen_core::tool_call::format_call("crop", &serde_json::json!({"box": [16, 8, 40, 24]})),
                Some(m) => format!("\\boxed{{{}}}", m.images.first().map(|u| content_hash(u)).unwrap_or_default()),
            };
            log.lock().unwrap().push(images);
            let reply = serde_json::json!({"id": "x", "object": "chat.completion", "created": 0, "model": "vlm",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})
            .to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                reply.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(reply.as_bytes()));
        }
    });
    (url, seen)
}

#[test]
fn pictures_cross_a_tool_call_and_the_wire_bit_identically_and_are_stored_once() {
    let (url, seen) = serve_stand_in();
    let client = OpenAiClient::new(&url, "vlm").unwrap();
    let env = Picture;
    let cfg = EpisodeConfig { max_turns: 3, ..Default::default() };
    let task = &env.tasks(0, 1)[0];
    let scene_hash = content_hash(&png_url(&scene()).unwrap());
    let crop_hash = content_hash(&png_url(&crop_by_hand()).unwrap());
    let t = run_episode(&Agent::Remote(&client), &env, &ToolRegistry::new(), task, &cfg, 1, "e0");
    // Hop 1: the tool's picture is the crop made by hand.
    assert_eq!(t.turns.len(), 2, "{:?}", t.end);
    let obs = &t.turns[0].observations[0];
    assert!(obs.ok, "{}", obs.content);
    assert_eq!(content_hash(&obs.images[0]), crop_hash);
    // Hops 2 and 3: the server got the task's picture with the question, then the same
    // picture and the crop — as a user part and a tool part.
    let sent = seen.lock().unwrap().clone();
    assert_eq!(sent[0], vec![("user".to_string(), scene_hash.clone())]);
    assert_eq!(sent[1], vec![("user".to_string(), scene_hash.clone()), ("tool".to_string(), crop_hash.clone())]);
    // And what it read back was exact: its answer (the hash it saw) checks.
    assert_eq!(t.final_answer.as_deref(), Some(crop_hash.as_str()));
    assert_eq!(t.reward, 1.0);

    // Hop 4: the run directory keeps each picture once and loads the same bytes.
    // Removed when the test ends, passed or failed.
    let _tmp = tempfile::Builder::new().prefix("kaizen-images-").tempdir().unwrap();
    let dir = _tmp.path().to_path_buf();
    let mut run = RunDir::create(&dir, &serde_json::json!({})).unwrap();
    let second = run_episode(&Agent::Remote(&client), &env, &ToolRegistry::new(), task, &cfg, 2, "e1");
    run.append(&t).unwrap();
    run.append(&second).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want =
        vec![format!("{}.png", &scene_hash["sha256:".len()..]), format!("{}.png", &crop_hash["sha256:".len()..])];
    want.sort();
    assert_eq!(files, want, "two episodes, two distinct pictures, two files");
    let lines = std::fs::read_to_string(dir.join(run_dir::TRAJECTORIES)).unwrap();
    assert!(!lines.contains("data:image"), "the lines name the files, not the bytes");
    let back = run_dir::load(&dir).unwrap();
    assert_eq!(back, vec![t, second]);
    // A stored picture that changed is an error, not a silent wrong image.
    std::fs::write(dir.join("images").join(&want[0]), b"not the picture").unwrap();
    assert!(run_dir::load(&dir).unwrap_err().contains("no longer match"));
}
