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
    println!("\n[task] {}\n[reference answer] {}", t.task.prompt, t.task.answer);
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
