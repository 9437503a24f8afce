#!/usr/bin/env bash
# kaizen's main job on the embedded defaults (installs what it needs first, idempotently).
# For now: the frozen proposer at work — SmolLM2 answers, then proposes N candidate answers
# with their log-probs (what Best-of-Q reranks), and MiniLM embeds them (the Q-function's
# features). Later issues extend this to tool use, RL and Best-of-Q.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
echo; echo "== 1. greedy answer (streamed) =="
$k generate --prompt "What is the capital of France? Answer in one sentence." --max-tokens 40
echo; echo "== 2. N=4 candidates from one shared prefill, with log-probs =="
$k generate --prompt "Suggest a name for a pet cat. Reply with the name only." --n 4 --temperature 1.0 --seed 3 --max-tokens 12
echo; echo "== 3. embeddings: cosine similarity =="
$k embed --similarity "What is 17 times 23?" "Compute the product of 17 and 23." "Cats sleep most of the day."
echo; echo "== 4. speed on this machine =="
$k bench generate --repeats 1 --gen-tokens 32
