#!/usr/bin/env bash
# Side-by-side generation speed: kaizen vs llama.cpp on the same SmolLM2 GGUF, prompt and token
# counts, with 1 and 2 threads, in one run. Prints a table (paste into BENCHMARKS.md).
#   bash bench/generate.sh [--repeats 3]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=3; [ "${1:-}" = "--repeats" ] && repeats=$2
bash scripts/setup.sh
py=$(bash bench/llamacpp_env.sh)
gguf="${KAIZEN_HOME:-$HOME/.cache/kaizen}/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
results=$(mktemp)
for t in 1 2; do
  echo "[bench] threads=$t: kaizen" >&2
  "${CARGO_TARGET_DIR:-target}/release/kaizen" --threads "$t" bench generate --repeats "$repeats" --json | tail -1 >>"$results"
  echo "[bench] threads=$t: llama.cpp" >&2
  "$py" bench/llamacpp_bench.py "$gguf" --threads "$t" --repeats "$repeats" >>"$results"
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {(r["engine"], r["threads"]): r for r in rows}
print(f"SmolLM2-135M-Instruct Q4_1 GGUF, prompt {rows[0]['prompt_tokens']} tokens, {rows[0]['gen_tokens']} generated, best of runs")
print(f"{'threads':>7} | {'kaizen prefill':>14} {'llama.cpp prefill':>17} | {'kaizen decode':>13} {'llama.cpp decode':>16} {'ratio':>6} | {'kaizen N=8 aggr.':>16} {'N=8 / 1':>7}")
for t in (1, 2):
    k, l = by[("kaizen", t)], by[("llama.cpp", t)]
    print(f"{t:>7} | {k['prefill_tps']:>14.1f} {l['prefill_tps']:>17.1f} | {k['decode_tps']:>13.1f} {l['decode_tps']:>16.1f} "
          f"{k['decode_tps'] / l['decode_tps']:>5.2f}x | {k['decode_n_tps']:>16.1f} {k['decode_n_tps'] / k['decode_tps']:>6.2f}x")
PY
rm -f "$results"
