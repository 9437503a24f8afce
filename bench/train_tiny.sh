#!/usr/bin/env bash
# Training throughput, kaizen (candle) next to PyTorch on the CPU: the tiny from-scratch
# transformer, or with --lora-rank R SmolLM2-135M's architecture training LoRA adapters on a
# frozen base. Identical model config and batch, forward + next-token loss + backward + AdamW,
# same thread count, in the same run; PyTorch both eager and under torch.compile. PyTorch comes from PyPI into a throwaway venv under
# $KAIZEN_HOME (a one-time download of ~3 GB: the PyPI wheel pulls CUDA libraries even for CPU
# use). Any extra flags (--layers, --width, --heads, --context, --batch, --steps, --lora-rank,
# --prev-token)
# go to kaizen; PyTorch gets the model sizes kaizen reports, so the two cannot differ.
#
#   bash bench/train_tiny.sh --threads 2 --context 256 --batch 8
#   bash bench/train_tiny.sh --threads 2 --context 256 --batch 4 --lora-rank 8
set -euo pipefail
cd "$(dirname "$0")/.."
KAIZEN_HOME="${KAIZEN_HOME:-$HOME/.cache/kaizen}"
TORCH_VERSION=2.15.0
threads=2
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
venv="$KAIZEN_HOME/venv-torch"
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "[train_tiny] installing torch $TORCH_VERSION into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION" numpy
fi
bash scripts/setup.sh >&2
kaizen_json=$(target/release/kaizen --threads "$threads" bench train "${args[@]}" --json | tail -1)
peer_args=$(python3 - "$kaizen_json" <<'PY'
import json, sys
k = json.loads(sys.argv[1])
keys = ["layers", "width", "heads", "kv_heads", "ffn", "vocab", "context", "batch", "steps", "lora_rank", "rope_base"]
print(" ".join(f"--{key.replace('_', '-')} {k[key]}" for key in keys), f"--prev-token {int(k['prev_token'])}")
PY
)
# shellcheck disable=SC2086
eager_json=$("$venv/bin/python" bench/train_tiny_torch.py --threads "$threads" $peer_args)
echo "[train_tiny] torch.compile peer (compiles in its warm-up, a minute or two)" >&2
# shellcheck disable=SC2086
compiled_json=$("$venv/bin/python" bench/train_tiny_torch.py --threads "$threads" $peer_args --compile)
python3 - "$kaizen_json" "$eager_json" "$compiled_json" <<'PY'
import json, sys
k, *peers = (json.loads(a) for a in sys.argv[1:])
for t in peers:
    for key in ("parameters", "trainable_parameters"):
        assert k[key] == t[key], f"configs differ: {key} {k[key]} vs {t[key]}"
what = "tiny transformer" if k["lora_rank"] == 0 else f"SmolLM2-135M + LoRA rank {k['lora_rank']}"
what += " with previous-token embeddings" if k["prev_token"] else ""
print(f"{what}: {k['layers']} layers x {k['width']} wide, {k['heads']}/{k['kv_heads']} heads, {k['parameters']} parameters "
      f"({k['trainable_parameters']} trained); batch {k['batch']} x {k['context']} tokens, {k['steps']} timed steps")
print(f"{'trainer':<36} {'tokens/s':>10} {'ms/step':>10} {'kaizen / this':>14}")
print(f"{'kaizen (candle)':<36} {k['tokens_per_second']:>10.0f} {k['ms_per_step']:>10.1f} {'':>14}")
for t in peers:
    print(f"{t['peer']:<36} {t['tokens_per_second']:>10.0f} {t['ms_per_step']:>10.1f} "
          f"{k['tokens_per_second'] / t['tokens_per_second']:>13.2f}x")
PY
