#!/usr/bin/env bash
# Runs tests/openai_peer.py (the official `openai` package, in a throwaway venv under
# $KAIZEN_HOME) against a `kaizen serve` started here on a free loopback port, then
# tests/openai_vision.py against a local vision model, then tests/openai_proxy.py against
# the Best-of-Q proxy in front of the first server (with a Q-function trained here on a few
# collected web episodes).
set -euo pipefail
cd "$(dirname "$0")/.."
KAIZEN_HOME="${KAIZEN_HOME:-$HOME/.cache/kaizen}"
venv="$KAIZEN_HOME/venv-openai"
if ! "$venv/bin/python" -c "import openai" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "openai>=1.50,<3"
fi
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
source scripts/serve_helpers.sh
port=$(free_port)
start "$port"
"$venv/bin/python" tests/openai_peer.py "http://127.0.0.1:$port/v1"

echo "== openai Python client sends a picture to a local vision model =="
# A tiny vision policy as `kaizen train` initialises it (no training steps): enough to show
# the picture reaches the model; what training makes of it is in BENCHMARKS.md.
cat >"$tmp/vl.toml" <<'EOF'
env = "shape-grid"
tool_schemas = false
[policy]
layers = 1
width = 32
heads = 2
context = 1024
[policy.vision]
side = 24
patch = 4
[sft]
steps = 0
[rl]
steps = 0
[eval]
tasks = 2
samples = 1
EOF
"$k" train "$tmp/vl.toml" --out "$tmp/vl" >/dev/null
vl=$(free_port)
start "$vl" --policy "$tmp/vl/policy.gguf" --served-name tiny-vl --no-embeddings --weights f32
"$venv/bin/python" tests/openai_vision.py "http://127.0.0.1:$vl/v1" "http://127.0.0.1:$port/v1"

echo "== openai Python client against the Best-of-Q proxy =="
"$k" collect --env miniwob:click-button --policy random --tasks 12 --samples 2 --concurrency 2 --out "$tmp/data" >/dev/null
"$k" q train "$tmp/data" --epochs 50 --out "$tmp/q.safetensors" >/dev/null
proxy=$(free_port)
start "$proxy" --upstream "http://127.0.0.1:$port/v1" --q "$tmp/q.safetensors" --candidates 3 --log-dir "$tmp/proxy"
"$venv/bin/python" tests/openai_proxy.py "http://127.0.0.1:$proxy/v1" "$tmp/proxy/decisions.jsonl"
