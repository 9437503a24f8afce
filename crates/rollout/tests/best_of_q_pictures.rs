//! Best-of-Q reads the picture of each state: on a shape-grid scene the scorer is handed the
//! task's picture at the first step and the crop the tool returned at the second, bit for bit
//! (content hashes computed here from the env's own pixels), and its pick is executed.

use kaizen_core::image::content_hash;
use kaizen_q::state::ActionScorer;
use kaizen_rollout::rerank::{run_best_of_n, Selector};
use kaizen_rollout::{Agent, EpisodeConfig, Job};
use kaizen_tools::ToolRegistry;
use std::sync::Mutex;

/// Records each state's picture (its hash) and prefers the last candidate.
#[derive(Default)]
struct Witness(Mutex<Vec<Option<String>>>);

impl ActionScorer for Witness {
    fn score(&self, _state: &str, picture: Option<&str>, actions: &[(String, f32)]) -> Result<Vec<f32>, String> {
        self.0.lock().unwrap().push(picture.map(content_hash));
        Ok((0..actions.len()).map(|i| i as f32).collect())
    }
}

#[test]
fn the_scorer_reads_the_task_picture_then_the_crop() {
    let env = kaizen_envs::open("shape-grid:test").unwrap();
    let task = env.tasks(11, 1).remove(0);
    let (row, col) = (task.meta["row"].as_u64().unwrap() as u32, task.meta["col"].as_u64().unwrap() as u32);
    let cfg = EpisodeConfig { max_turns: 3, ..Default::default() };
    let witness = Witness::default();
    let zoomer = kaizen_envs::shape_grid::agents::Zoomer;
    let t = run_best_of_n(
        &Agent::Remote(&zoomer),
        env.as_ref(),
        &ToolRegistry::standard(),
        Job::new(task.clone(), 0, "e".to_string()),
        &cfg,
        2,
        &Selector::Scored(&witness),
    );
    assert!(t.solved(), "{:?}", t.end);
    // The crop of the asked cell, made here from the scene's own session.
    let mut session = env.open_session(&task).unwrap().unwrap();
    let bx = [(col - 1) * 64, (row - 1) * 64, col * 64, row * 64];
    let crop = session.act(&kaizen_core::ToolCall {
        id: String::new(),
        name: "crop".into(),
        arguments: serde_json::json!({"box": bx}),
    });
    let seen = witness.0.lock().unwrap().clone();
    assert_eq!(seen, vec![Some(content_hash(&task.images[0])), Some(content_hash(&crop.images[0]))]);
    assert_ne!(seen[0], seen[1]);
}
