#!/usr/bin/env bash
# What the shared-prefix KV cache buys: the same episodes (same tasks, seeds, tokens — the
# cache changes no number) with the cache off (--prefix-cache-mib 0) and on (the default),
# alternating, each in a fresh process (so each starts with an empty cache), `runs` times.
# Two workloads: distinct arith tasks with 3 worked examples in the prompt (what an RL step
# or an evaluation runs), and 10 samples of each of 4 tasks (Agent0's self-consistency).
#
#   bash bench/prefix_cache.sh [runs] [threads]
#
# With BASELINE=/path/to/an/older/kaizen, each run also times that binary with the cache on
# (rows "base"), alternating with the others: a before/after of a cache change in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
threads=${2:-2}
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
workload() {
  case "$1" in
    distinct) echo "--episodes 24" ;;
    samples) echo "--episodes 4 --samples 10" ;;
  esac
}
printf '%-10s %-6s %4s %10s %12s %10s %14s\n' workload cache run "wall s" "episodes/s" "hit rate" "tokens saved"
for w in distinct samples; do
  for i in $(seq 1 "$runs"); do
    for cfg in off on ${BASELINE:+base}; do
      bin=$k; mib=1024
      [ "$cfg" = off ] && mib=0
      [ "$cfg" = base ] && bin=$BASELINE
      out="$tmp/$w-$cfg-$i"
      # shellcheck disable=SC2046
      "$bin" --threads "$threads" --prefix-cache-mib "$mib" run --env arith --shots 3 --temperature 0.7 --seed 700 \
        --concurrency 8 --max-turns 3 --max-tokens-per-turn 64 $(workload "$w") --out "$out" >/dev/null 2>&1
      python3 - "$out/summary.json" "$w" "$cfg" "$i" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
cache = sys.argv[3]
print(f"{sys.argv[2]:<10} {cache:<6} {sys.argv[4]:>4} {s['wall_seconds']:>10.1f} {s['episodes_per_second']:>12.3f} "
      f"{100 * s.get('prefix_hit_rate', 0):>9.0f}% {s.get('prefix_tokens_saved', 0):>14}")
PY
    done
  done
done
