//! `kaizen models`: what set-up installed, where, and whether it is intact.

use kaizen_models::home::{kaizen_home, model_files, SETUP_COMMAND};
use sha2::{Digest, Sha256};
use std::io::Read;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Re-check every file's SHA-256 against assets/models.lock.
    #[arg(long)]
    verify: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let home = kaizen_home();
    println!("KAIZEN_HOME = {}\n", home.display());
    println!("{:<24} {:<28} {:>9}  {:<9} path", "model", "package", "size", "status");
    let mut missing = 0;
    for f in model_files() {
        let path = home.join(&f.relative_path);
        let (size, status) = match std::fs::metadata(&path) {
            Err(_) => {
                missing += 1;
                ("-".to_string(), "missing")
            }
            Ok(m) => {
                let status = if !a.verify {
                    "installed"
                } else if sha256(&path)? == f.sha256 {
                    "verified"
                } else {
                    missing += 1;
                    "CORRUPT"
                };
                (format!("{:.1} MB", m.len() as f64 / 1e6), status)
            }
        };
        println!("{:<24} {:<28} {:>9}  {:<9} {}", f.model, f.package, size, status, path.display());
    }
    if missing > 0 {
        println!("\n{missing} file(s) missing or corrupt: run `{SETUP_COMMAND}`");
    }
    Ok(())
}

fn sha256(path: &std::path::Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
