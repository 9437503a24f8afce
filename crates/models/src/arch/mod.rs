//! Model architectures and their weights: GGUF files (`gguf`), the llama family with its KV
//! cache (`llama`: SmolLM2, Llama, Qwen2, Gemma 3 and kaizen's tiny models), BERT for MiniLM
//! (`bert`), and pictures as decoder input rows (`vision`).

pub mod bert;
pub mod gguf;
pub mod llama;
pub mod vision;
