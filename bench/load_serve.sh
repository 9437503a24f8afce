#!/usr/bin/env bash
# Load test on loopback, bounded and self-stopping: CLIENTS concurrent clients (default 40)
# with valid and hostile requests (bench/load_serve.py) against `kaizen serve`, then against
# the Best-of-Q proxy in front of it. Prints one JSON line per target: status counts, p50/p99 of
# the valid requests, peak RSS of the server, and whether it is still up.
#
# usage: bash bench/load_serve.sh [--clients 40] [--rounds 8] [--max-tokens 8]
set -euo pipefail
cd "$(dirname "$0")/.."
args=("$@")
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
[ -x "$k" ] || bash scripts/setup.sh
source scripts/serve_helpers.sh
# The server's budget: 8,192 KV positions a request (SmolLM2: 45 KiB each, 360 MiB), so that
# the proxy's N = 3 choices of a 100,000-token request are refused upstream too.
port=$(free_port)
start "$port" --no-embeddings --max-request-tokens 8192
echo "== kaizen serve (max-request-tokens 8192) =="
python3 bench/load_serve.py "http://127.0.0.1:$port/v1" "${pids[-1]}" "${args[@]}"

"$k" collect --env miniwob:click-button --policy random --tasks 12 --samples 2 --concurrency 2 --out "$tmp/data" >/dev/null 2>&1
"$k" q train "$tmp/data" --epochs 50 --out "$tmp/q.safetensors" >/dev/null 2>&1
proxy=$(free_port)
start "$proxy" --upstream "http://127.0.0.1:$port/v1" --q "$tmp/q.safetensors" --candidates 3 --log-dir "$tmp/proxy"
echo "== Best-of-Q proxy (N = 3) in front of it =="
python3 bench/load_serve.py "http://127.0.0.1:$proxy/v1" "${pids[-1]}" "${args[@]}"
echo "== the upstream server after both runs =="
python3 -c "
import urllib.request as u
print('upstream alive:', u.urlopen('http://127.0.0.1:$port/health', timeout=5).status == 200)
print('upstream peak RSS (VmHWM):', [l.split()[1] for l in open('/proc/${pids[0]}/status') if l.startswith('VmHWM')][0], 'KiB')"
