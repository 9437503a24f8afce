//! `kaizen embed`: sentence embeddings as JSON lines, or a cosine-similarity table.

use super::policy::read_text;
use kaizen_models::{cosine, Embedder};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Sentences to embed.
    texts: Vec<String>,
    /// Also read sentences from a UTF-8 file, one per line.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Print pairwise cosine similarities instead of vectors.
    #[arg(long)]
    similarity: bool,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let mut texts = a.texts.clone();
    if let Some(f) = &a.file {
        texts.extend(read_text(f)?.lines().filter(|l| !l.trim().is_empty()).map(String::from));
    }
    anyhow::ensure!(!texts.is_empty(), "give sentences as arguments or with --file");
    let e = Embedder::load_installed()?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let start = std::time::Instant::now();
    let vecs = e.embed(&refs, a.batch_size)?;
    let secs = start.elapsed().as_secs_f64();
    if a.similarity {
        print!("{:>4}", "");
        for j in 0..texts.len() {
            print!(" {j:>7}");
        }
        println!();
        for (i, v) in vecs.iter().enumerate() {
            print!("{i:>4}");
            for w in &vecs {
                print!(" {:>7.4}", cosine(v, w));
            }
            println!("   {}", texts[i]);
        }
    } else {
        for (t, v) in texts.iter().zip(&vecs) {
            println!("{}", serde_json::json!({"text": t, "embedding": v}));
        }
    }
    eprintln!(
        "{} sentences in {secs:.2}s ({:.0}/s), {}-d, model {}",
        texts.len(),
        texts.len() as f64 / secs,
        e.dim(),
        e.id
    );
    Ok(())
}
