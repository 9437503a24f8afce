#!/usr/bin/env bash
# Generation speed, kaizen next to llama.cpp's own `llama-bench`, on the same weights, with 1
# and 2 threads, in one run. Two weight files: SmolLM2-135M-Instruct's Q4_1 GGUF as shipped,
# and a Q8_0 file made from it by llama.cpp's own `llama-quantize`. Every row is prefill of a
# 128-token prompt and 64 greedy decode steps after it (llama-bench: pp128 at depth 0, tg64 at
# depth 128), best of the repeats. Prints a table (paste into BENCHMARKS.md).
#
#   bash bench/generate.sh [--repeats 5]
#
# kaizen's rows say how it holds the file's weights: `q8_0` re-quantises every matrix to 8 bits
# at load (on the Q8_0 file that gives back the file's own 8-bit values) for its int8 kernel;
# `native` keeps the file's format on candle's kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=3; [ "${1:-}" = "--repeats" ] && repeats=$2
bash scripts/setup.sh >&2
bin=$(bash bench/llamacpp_native.sh)
models="${KAIZEN_HOME:-$HOME/.cache/kaizen}/models/smollm2-135m-instruct"
q4_1="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
q8_0=$(bash bench/q8_0_file.sh)
kaizen="${CARGO_TARGET_DIR:-target}/release/kaizen"
results=$(mktemp)
for t in 1 2; do
  for file in q4_1 q8_0; do
    path=${!file}
    for weights in q8_0 native; do
      echo "[bench] threads=$t $file: kaizen --weights $weights" >&2
      # candle's kernels for the file's own format are slow (no SIMD Q4_1 path): 2 repeats and
      # no shared-prefix measurement there, or the native rows alone take half an hour.
      extra=(--repeats "$repeats"); [ "$weights" = native ] && extra=(--repeats 2 --n 1)
      "$kaizen" --threads "$t" bench generate --model "$path" --weights "$weights" "${extra[@]}" --json \
        | tail -1 | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(file='$file'); print(json.dumps(r))" >>"$results"
    done
    echo "[bench] threads=$t $file: llama-bench" >&2
    "$bin/llama-bench" -m "$path" -t "$t" -p 128 -n 64 -d 0,128 -r "$repeats" -o jsonl 2>/dev/null \
      | python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
pp = [r for r in rows if r['n_prompt'] == 128 and r['n_gen'] == 0 and r['n_depth'] == 0][0]
tg = [r for r in rows if r['n_gen'] == 64 and r['n_prompt'] == 0 and r['n_depth'] == 128][0]
# llama-bench reports the mean over its repetitions; the best one matches kaizen's best-of.
best = lambda r: r['n_prompt' if r['n_prompt'] else 'n_gen'] / (min(r['samples_ns']) / 1e9)
print(json.dumps({'engine': 'llama.cpp', 'threads': $t, 'file': '$file', 'weights': 'file',
                  'prefill_tps': best(pp), 'decode_tps': best(tg), 'build': pp['build_commit']}))" >>"$results"
  done
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"SmolLM2-135M-Instruct, prompt 128 tokens then 64 greedy decode steps, best of runs; llama.cpp build "
      f"{next(r['build'] for r in rows if r['engine'] == 'llama.cpp')}")
print(f"{'threads':>7} {'file':>5} {'engine (weights in memory)':<30} {'prefill tok/s':>13} {'decode tok/s':>12} {'decode / llama.cpp':>18}")
for t in (1, 2):
    for f in ("q4_1", "q8_0"):
        peer = next(r for r in rows if r["engine"] == "llama.cpp" and r["threads"] == t and r["file"] == f)
        for r in [r for r in rows if r["threads"] == t and r["file"] == f]:
            what = "llama.cpp llama-bench" if r["engine"] == "llama.cpp" else f"kaizen ({r['weights'].lower()})"
            print(f"{t:>7} {f:>5} {what:<30} {r['prefill_tps']:>13.1f} {r['decode_tps']:>12.1f} "
                  f"{r['decode_tps'] / peer['decode_tps']:>17.2f}x")
PY
rm -f "$results"
