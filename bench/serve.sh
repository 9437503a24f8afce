#!/usr/bin/env bash
# What continuous batching in `kaizen serve` buys: K clients at once (K = 1, 4, 8), each asking
# for one 64-token answer to a distinct prompt (temperature 1, seeded, end-of-sequence allowed:
# tokens are counted as answered), timed from the first request to the last answer; aggregate
# completion tokens/s per K. With BASELINE=/path/to/an/older/kaizen the same loads run against
# that binary too, in the same run (a before/after of the server change).
#
#   bash bench/serve.sh [threads] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-2}
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
port=18190
printf '%-8s %3s %5s %8s %10s %14s\n' server K round "wall s" "tokens" "tokens/s"
for bin in "$k" ${BASELINE:+"$BASELINE"}; do
  name=head; [ "$bin" = "$k" ] || name=base
  "$bin" --threads "$threads" serve --port $port --no-embeddings >/dev/null 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.5; done
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
    return json.load(urllib.request.urlopen(req, timeout=600))["usage"]["completion_tokens"]
t = time.time()
with ThreadPoolExecutor(k) as pool:
    tokens = sum(pool.map(ask, range(k)))
wall = time.time() - t
print(f"{name:<8} {k:>3} {r:>5} {wall:>8.2f} {tokens:>10} {tokens / wall:>14.1f}")
PY
    done
  done
  kill $pid; wait $pid 2>/dev/null || true
done
