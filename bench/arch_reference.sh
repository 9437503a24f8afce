#!/usr/bin/env bash
# Regenerates crates/models/tests/fixtures/tiny_arch_llamacpp_logits.jsonl with llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash bench/llamacpp_env.sh)
dir=$(mktemp -d)
cargo run --release -q -p kaizen-models --example tiny_gguf "$dir" >/dev/null
"$py" bench/arch_reference.py "$dir"/tiny-llama.gguf "$dir"/tiny-qwen2.gguf "$dir"/tiny-qwen3.gguf "$dir"/tiny-gemma3.gguf \
  > crates/models/tests/fixtures/tiny_arch_llamacpp_logits.jsonl
rm -rf "$dir"
echo "wrote crates/models/tests/fixtures/tiny_arch_llamacpp_logits.jsonl"
