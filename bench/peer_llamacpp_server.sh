#!/usr/bin/env bash
# kaizen's OpenAI client against llama.cpp's OpenAI-compatible server (llama-cpp-python's
# server, same GGUF): a second, independent peer for `--policy openai:URL`.
#   bash bench/peer_llamacpp_server.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash bench/llamacpp_env.sh)
"$py" -m pip install -q --disable-pip-version-check fastapi uvicorn sse-starlette starlette-context pydantic-settings
gguf="${KAIZEN_HOME:-$HOME/.cache/kaizen}/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$py" -m llama_cpp.server --model "$gguf" --model_alias smollm2 --port "$port" --n_ctx 2048 --chat_format chatml >/tmp/llamacpp-server.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/v1/models', timeout=1)" 2>/dev/null && break
  sleep 1
done
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
set -x
$k generate --policy "openai:http://127.0.0.1:$port" --remote-model smollm2 --prompt "What is the capital of France?" --max-tokens 20 --top-logprobs 2
$k generate --policy "openai:http://127.0.0.1:$port" --remote-model smollm2 --prompt "Name a fruit." --n 3 --temperature 1 --seed 4 --max-tokens 8
