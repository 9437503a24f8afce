//! Writes the tiny llama / qwen2 / qwen3 GGUFs into a folder (for `bench/arch_reference.sh`).
#[path = "../tests/common/tiny_gguf.rs"]
mod tiny_gguf;

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: tiny_gguf OUT_DIR"));
    std::fs::create_dir_all(&dir).expect("out dir");
    let vocab = kaizen_models::home::gguf_path("smollm2").expect("run scripts/setup.sh");
    for arch in tiny_gguf::ARCHS {
        println!("{}", tiny_gguf::write(arch, &vocab, &dir).display());
    }
}
