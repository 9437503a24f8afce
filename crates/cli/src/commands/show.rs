//! `kaizen show`: an episode of a run as a readable transcript.

use kaizen_rollout::run_dir;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A run directory written by `kaizen run`.
    run: PathBuf,
    /// Which episode (index in the run; default the first).
    #[arg(long, default_value_t = 0)]
    episode: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let all = run_dir::load(&a.run).map_err(|e| anyhow::anyhow!(e))?;
    anyhow::ensure!(!all.is_empty(), "{} holds no episodes", a.run.display());
    let t = all.get(a.episode).ok_or_else(|| {
        anyhow::anyhow!("episode {} does not exist; the run has {} (0..{})", a.episode, all.len(), all.len() - 1)
    })?;
    println!("episode {} · env {} · policy {} · seed {}", t.episode_id, t.env, t.policy, t.seed);
    println!("\n[task] {}", t.task.prompt);
    t.task.images.iter().for_each(|url| println!("{}", picture(url)));
    println!("[reference answer] {}", t.task.answer);
    for (i, turn) in t.turns.iter().enumerate() {
        println!("\n── turn {} ({} tokens) ──\n{}", i + 1, turn.generated_tokens, turn.text.trim_end());
        for (j, obs) in turn.observations.iter().enumerate() {
            let call = turn
                .tool_calls
                .get(j)
                .map(|c| format!("{} {}", c.name, c.arguments))
                .unwrap_or_else(|| "malformed call".into());
            println!(
                "  ⮑ [{}] {call} → {} ({:.1} ms)",
                if obs.ok { "ok" } else { "error" },
                obs.content.trim_end(),
                obs.elapsed_ms
            );
            obs.images.iter().for_each(|url| println!("    {}", picture(url)));
        }
    }
    println!(
        "\n[end] {:?} · answer {:?} · reward {} · {} tokens ({} written) · {:.0} ms",
        t.end,
        t.final_answer,
        t.reward,
        t.token_ids.len(),
        t.generated_tokens(),
        t.timing.total_ms
    );
    Ok(())
}

/// One line for a picture: its size and content hash (the run keeps it as `images/<hash>.png`).
fn picture(url: &str) -> String {
    let hash = kaizen_core::image::content_hash(url);
    match kaizen_tools::image::decode_url(url) {
        Ok(p) => format!("[picture {}×{} {hash}]", p.width(), p.height()),
        Err(e) => format!("[picture {hash}: {e}]"),
    }
}
