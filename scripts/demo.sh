#!/usr/bin/env bash
# kaizen's main job on the embedded defaults (installs what it needs first, idempotently):
# the frozen proposer (SmolLM2) sampling candidate actions with log-probs, agents running
# episodes with sandboxed tools, in a real browser and on pictures with image tools, and a
# short version of the training loop (SFT cold start, then RL) with its diagnostics. Each run lands in runs/demo-<time>-*, and one
# offline HTML report of them all in runs/demo-<time>-report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
runs="runs/demo-$(date +%Y%m%d-%H%M%S)"
echo; echo "== 1. greedy answer (streamed) =="
$k generate --prompt "What is the capital of France? Answer in one sentence." --max-tokens 40
echo; echo "== 2. N=4 candidate actions from one shared prefill, with log-probs (what Best-of-Q reranks) =="
$k generate --prompt "Suggest a name for a pet cat. Reply with the name only." --n 4 --temperature 1.0 --seed 3 --max-tokens 12
echo; echo "== 3. tool-use episodes: SmolLM2 on arith, tools in the bubblewrap sandbox =="
$k run --env arith --episodes 4 --max-tokens-per-turn 96 --out "$runs-arith"
echo; echo "== 4. web episodes: MiniWoB++ in headless Chromium (scripted oracle vs random clicks) =="
$k run --env miniwob-easy --policy oracle --episodes 11 --concurrency 2 --out "$runs-web-oracle"
$k run --env miniwob-easy --policy random --episodes 11 --concurrency 2 --out "$runs-web-random"
echo; echo "== 5. pictures: shape-grid questions about a 24x24 picture, without and with the crop tool =="
$k run --env shape-grid:test --policy glance --episodes 100 --out "$runs-shapes-glance"
$k run --env shape-grid:test --policy zoomer --episodes 100 --out "$runs-shapes-zoomer"
echo; echo "== 6. the training loop, short: SFT cold start then GRPO on the tiny policy =="
$k train recipes/demo-tiny-grpo.toml --out "$runs-train"
echo; echo "== 7. speed on this machine =="
$k bench generate --repeats 1 --gen-tokens 32
echo; echo "== 8. one offline report of these runs: curves, tables, every episode =="
$k report "$runs-train" "$runs-arith" "$runs-web-oracle" "$runs-web-random" "$runs-shapes-glance" "$runs-shapes-zoomer" --out "$runs-report.html"
echo "open $runs-report.html in a browser (no network needed)"
