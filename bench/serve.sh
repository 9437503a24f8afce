#!/usr/bin/env bash
# Server throughput under concurrent clients: `kaizen serve` (continuous batching) beside
# llama.cpp's own `llama-server --parallel 8` (continuous batching, its users' way of serving
# many clients), on the same weights: SmolLM2-135M-Instruct as a Q8_0 file made by llama.cpp's
# `llama-quantize` from the shipped Q4_1 file (kaizen holds it as the same 8-bit values).
# K clients at once (K = 1, 4, 8), each asking for one 64-token answer to a distinct prompt
# (temperature 1, seeded; an answer may end early, so tokens are counted as answered), timed
# from the first request to the last answer: aggregate completion tokens/s, and each request's
# latency (p50 / max over the K). With BASELINE=/path/to/an/older/kaizen that binary serves
# the same loads too, in the same run.
#
#   bash bench/serve.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-2}
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
llama=$(bash bench/llamacpp_native.sh)
q8_0=$(bash bench/q8_0_file.sh)
port=18190
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null || true' EXIT
printf '%-12s %3s %5s %8s %7s %10s %10s %10s\n' server K round "wall s" tokens "tokens/s" "p50 s" "max s"
servers=(kaizen llama-server)
[ -n "${BASELINE:-}" ] && servers+=(baseline)
for name in "${servers[@]}"; do
  case $name in
    kaizen) "$k" --threads "$threads" serve --policy "$q8_0" --served-name smollm2 --port $port --no-embeddings >/dev/null 2>&1 & ;;
    baseline) "$BASELINE" --threads "$threads" serve --policy "$q8_0" --served-name smollm2 --port $port --no-embeddings >/dev/null 2>&1 & ;;
    llama-server) "$llama/llama-server" -m "$q8_0" -t "$threads" -np 8 -c 8192 --port $port >/dev/null 2>&1 & ;;
  esac
  pid=$!
  for _ in $(seq 1 240); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
  for kk in 1 4 8; do
    for r in $(seq 1 "$rounds"); do
      python3 - "$port" "$kk" "$r" "$name" <<'PY'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
port, k, r, name = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
topics = ["a cat", "the sea", "a robot", "winter", "a city", "a forest", "a ship", "the moon"]
def ask(i):
    body = {"model": "smollm2", "max_tokens": 64, "temperature": 1.0, "seed": 1000 * r + i,
            "messages": [{"role": "user", "content": f"Write a long story about {topics[i]} (round {r})."}]}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    t = time.time()
    tokens = json.load(urllib.request.urlopen(req, timeout=600))["usage"]["completion_tokens"]
    return tokens, time.time() - t
t = time.time()
with ThreadPoolExecutor(k) as pool:
    results = list(pool.map(ask, range(k)))
wall = time.time() - t
tokens = sum(x[0] for x in results)
lat = sorted(x[1] for x in results)
print(f"{name:<12} {k:>3} {r:>5} {wall:>8.2f} {tokens:>7} {tokens / wall:>10.1f} {lat[(len(lat) - 1) // 2]:>10.2f} {lat[-1]:>10.2f}")
PY
    done
  done
  kill $pid; wait $pid 2>/dev/null || true; pid=
done
