//! Text in and out of a model: the byte-level BPE tokenizer read from GGUF metadata
//! (`tokenizer`), SentencePiece for BERT-family vocabularies (`spm`), and the chat template
//! that writes messages, tool schemas and picture placeholders as a prompt (`chat_template`).

pub mod chat_template;
pub mod spm;
pub mod tokenizer;
