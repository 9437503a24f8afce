#!/usr/bin/env bash
# Regenerates crates/models/tests/fixtures/smollm2_llamacpp_tokens.jsonl with llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash bench/llamacpp_env.sh)
gguf="${KAIZEN_HOME:-$HOME/.cache/kaizen}/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
"$py" bench/tokenizer_reference.py "$gguf" crates/models/tests/fixtures/smollm2_llamacpp_tokens.jsonl
