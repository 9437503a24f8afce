//! Broken inputs give clear errors, never panics: a missing, truncated, corrupt or foreign GGUF
//! file, an unknown architecture.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use kaizen_models::{LocalLlm, WeightFormat};
use std::path::{Path, PathBuf};

/// A path named `name` in a fresh folder, removed with the returned guard.
fn tmp(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("kaizen-bad-files-").tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

fn load_err(path: &Path) -> String {
    match LocalLlm::load(path, WeightFormat::Q8_0) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

fn real_gguf() -> PathBuf {
    kaizen_models::home::gguf_path("smollm2").expect("run scripts/setup.sh")
}

#[test]
fn missing_file_names_the_setup_command() {
    let (_dir, p) = tmp("does-not-exist.gguf");
    let err = load_err(&p);
    assert!(err.contains("scripts/setup.sh"), "{err}");
}

#[test]
fn truncated_download_is_reported_as_truncated() {
    let bytes = std::fs::read(real_gguf()).unwrap();
    let (_dir, p) = tmp("truncated.gguf");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&p);
    assert!(err.contains("truncated"), "{err}");
    // Cut inside the header too.
    std::fs::write(&p, &bytes[..100_000]).unwrap();
    let err = load_err(&p);
    assert!(err.contains("corrupt or truncated"), "{err}");
}

#[test]
fn corrupt_header_and_foreign_files_are_errors() {
    let bytes = std::fs::read(real_gguf()).unwrap();
    let mut corrupt = bytes[..4096].to_vec();
    for (i, b) in corrupt.iter_mut().enumerate().skip(8) {
        *b = (i * 131 % 251) as u8; // garbage lengths and types after the magic
    }
    let (_dir, p) = tmp("corrupt.gguf");
    std::fs::write(&p, &corrupt).unwrap();
    let err = load_err(&p);
    assert!(err.contains("corrupt"), "{err}");

    let (_dir, p) = tmp("not-a-model.gguf");
    std::fs::write(&p, b"PK\x03\x04 this is a zip, not a model").unwrap();
    let err = load_err(&p);
    assert!(err.contains("not a GGUF file"), "{err}");
}

#[test]
fn unknown_architecture_lists_the_supported_ones() {
    let (_dir, p) = tmp("mamba.gguf");
    let t = QTensor::quantize(&Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu).unwrap(), GgmlDType::F32)
        .unwrap();
    let arch = Value::String("mamba".into());
    let mut f = std::fs::File::create(&p).unwrap();
    gguf_file::write(&mut f, &[("general.architecture", &arch)], &[("token_embd.weight", &t)]).unwrap();
    drop(f);
    let err = load_err(&p);
    assert!(err.contains("architecture 'mamba' is not supported"), "{err}");
    assert!(err.contains("llama, qwen2, qwen3"), "{err}");
}
