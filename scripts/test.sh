#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what it needs (idempotent), then runs the
# Rust tests (unit + integration with the real models) and the official `openai` Python client
# against `kaizen serve` as an independent peer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== cargo test (release: the model tests run real SmolLM2 and MiniLM) =="
cargo test --release --workspace
echo "== openai Python client against kaizen serve =="
bash tests/openai_peer.sh
echo "== kaizen export verl read back with pyarrow; its reward file under plain python3 =="
bash tests/verl_export.sh
