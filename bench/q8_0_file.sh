#!/usr/bin/env bash
# The Q8_0 weight file the speed benchmarks share: SmolLM2-135M-Instruct's shipped Q4_1 GGUF
# re-quantised by llama.cpp's own `llama-quantize` (built by bench/llamacpp_native.sh), made once
# and cached. Prints its path on stdout.
#
#   q8_0=$(bash bench/q8_0_file.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
home="${KAIZEN_HOME:-$HOME/.cache/kaizen}"
q4_1="$home/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
q8_0="$home/llamacpp-native-q8_0/SmolLM2-135M-Instruct.Q8_0.gguf"
if [ ! -f "$q8_0" ]; then
  bin=$(bash bench/llamacpp_native.sh)
  mkdir -p "$(dirname "$q8_0")"
  "$bin/llama-quantize" --allow-requantize "$q4_1" "$q8_0.partial" Q8_0 >/dev/null 2>&1
  mv "$q8_0.partial" "$q8_0"
fi
echo "$q8_0"
