//! `kaizen generate`: sample completions of one prompt and show them with their log-probs.

use super::policy::{read_text, Backend, PolicyArgs, SamplingArgs};
use kaizen_core::{ChatRequest, Completion, Message};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The user message.
    #[arg(long, conflicts_with = "prompt_file")]
    prompt: Option<String>,
    /// Read the user message from a UTF-8 file.
    #[arg(long)]
    prompt_file: Option<PathBuf>,
    /// A system message.
    #[arg(long)]
    system: Option<String>,
    /// Show the K most likely alternatives for each token.
    #[arg(long, default_value_t = 0)]
    top_logprobs: usize,
    /// Print the completions as JSON (one object per line).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let user = match (&a.prompt, &a.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => read_text(f)?,
        (None, None) => anyhow::bail!("give --prompt TEXT or --prompt-file PATH"),
    };
    let mut messages = Vec::new();
    if let Some(s) = &a.system {
        messages.push(Message::system(s.clone()));
    }
    messages.push(Message::user(user));
    let params = a.sampling.params(a.top_logprobs);
    params.validate().map_err(|e| anyhow::anyhow!(e))?;
    let backend = Backend::open(&a.policy)?;
    let start = Instant::now();
    let streamed = matches!(backend, Backend::Local(_)) && !(a.json || params.n > 1);
    let completions: Vec<Completion> = match (&backend, !streamed) {
        // One local completion: stream it as it is written.
        (Backend::Local(llm), false) => {
            let prompt = llm.encode_chat(&messages, &[])?;
            let mut out = std::io::stdout();
            let c = llm.generate(&prompt, &params, &mut |e| {
                let _ = out.write_all(e.text_delta.as_bytes());
                let _ = out.flush();
                true
            })?;
            println!();
            c
        }
        _ => backend.policy().chat(&ChatRequest { messages, tools: vec![], params: params.clone() })?,
    };
    let secs = start.elapsed().as_secs_f64();
    if a.json {
        for c in &completions {
            println!("{}", serde_json::to_string(c)?);
        }
        return Ok(());
    }
    if params.n > 1 {
        for (i, c) in completions.iter().enumerate() {
            println!("--- [{i}] ---\n{}", c.text);
        }
    } else if !streamed {
        for c in &completions {
            println!("{}", c.text);
        }
    }
    if a.top_logprobs > 0 {
        for c in &completions {
            println!("\n{:<6} {:<18} {:>9}   alternatives", "pos", "token", "logprob");
            for (i, t) in c.logprobs.iter().enumerate() {
                let alts: Vec<String> = t.top.iter().map(|x| format!("{:?} {:.2}", x.token, x.logprob)).collect();
                println!("{i:<6} {:<18} {:>9.4}   {}", format!("{:?}", t.token), t.logprob, alts.join(", "));
            }
        }
    }
    let tokens: usize = completions.iter().map(|c| c.logprobs.len()).sum();
    eprintln!();
    eprintln!("{:<4} {:>8} {:>12} {:>14} {:>8}", "#", "tokens", "sum logprob", "mean logprob", "finish");
    for (i, c) in completions.iter().enumerate() {
        let finish = kaizen_core::openai::finish_reason_str(c.finish_reason);
        if c.logprobs.is_empty() {
            // A remote server that returned no log-probs.
            eprintln!("{i:<4} {:>8} {:>12} {:>14} {finish:>8}", "-", "-", "-");
            continue;
        }
        let n = c.logprobs.len() as f32;
        eprintln!(
            "{i:<4} {:>8} {:>12.3} {:>14.4} {finish:>8}",
            c.logprobs.len(),
            c.total_logprob(),
            c.total_logprob() / n
        );
    }
    eprintln!(
        "{tokens} tokens in {secs:.2}s ({:.1} tokens/s, prompt included in time) — {}",
        tokens as f64 / secs,
        backend.policy().name()
    );
    Ok(())
}
