//! Writes the tiny llama / qwen2 / qwen3 GGUFs into a folder (for `bench/arch_reference.sh`).
#[path = "../tests/common/tiny_gguf.rs"]
mod tiny_gguf;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: tiny_gguf OUT_DIR")?);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let vocab = kaizen_models::home::gguf_path("smollm2").map_err(|e| e.to_string())?;
    for arch in tiny_gguf::ARCHS {
        println!("{}", tiny_gguf::write(arch, &vocab, &dir)?.display());
    }
    Ok(())
}
