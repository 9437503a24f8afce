//! `kaizen chat`: an interactive, streaming chat in the terminal.

use super::policy::{Backend, PolicyArgs, SamplingArgs};
use kaizen_core::{ChatRequest, Message};
use std::io::{BufRead, Write};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[arg(long)]
    system: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let backend = Backend::open(&a.policy)?;
    let params = kaizen_core::SamplingParams { n: 1, ..a.sampling.params(0) };
    params.validate().map_err(|e| anyhow::anyhow!(e))?;
    let fresh = || a.system.iter().map(|s| Message::system(s.clone())).collect::<Vec<_>>();
    let mut history = fresh();
    eprintln!("kaizen chat — {} (type /reset to clear, /exit or ctrl-d to quit)", backend.policy().name());
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    loop {
        eprint!("\n> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        match line.trim() {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history = fresh();
                eprintln!("(history cleared)");
                continue;
            }
            _ => {}
        }
        history.push(Message::user(line));
        let reply = match &backend {
            Backend::Local(llm) => {
                let prompt = match llm.encode_chat(&history, &[]) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("error: {e}");
                        history.pop();
                        continue;
                    }
                };
                let result = llm.generate(&prompt, &params, &mut |e| {
                    let _ = out.write_all(e.text_delta.as_bytes());
                    let _ = out.flush();
                    true
                });
                println!();
                result.map(|mut c| c.remove(0).text).map_err(anyhow::Error::from)
            }
            Backend::Remote(r) => {
                let req = ChatRequest { messages: history.clone(), tools: vec![], params: params.clone() };
                let reply = r.chat(&req).map(|mut c| c.remove(0).text).map_err(anyhow::Error::from);
                if let Ok(t) = &reply {
                    println!("{t}");
                }
                reply
            }
        };
        match reply {
            Ok(text) => history.push(Message::assistant(text)),
            Err(e) => {
                // An over-long history, say: report it and let the user go on or /reset.
                eprintln!("error: {e:#}");
                history.pop();
            }
        }
    }
    Ok(())
}
