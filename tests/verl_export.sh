#!/usr/bin/env bash
# `kaizen export verl` read back by an independent reader: pyarrow (in a throwaway venv under
# $KAIZEN_HOME) checks the Parquet against verl's dataset schema, and the reward file is
# imported by plain python3 and scores right and wrong answers.
set -euo pipefail
cd "$(dirname "$0")/.."
KAIZEN_HOME="${KAIZEN_HOME:-$HOME/.cache/kaizen}"
venv="$KAIZEN_HOME/venv-pyarrow"
if ! "$venv/bin/python" -c "import pyarrow" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "pyarrow>=15,<30"
fi
k="${CARGO_TARGET_DIR:-target}/release/kaizen"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/pool.jsonl" <<'JSONL'
{"id": "it1-0000", "prompt": "A shop sells 12 boxes of 25 pens. How many pens?", "answer": "300", "checker": "numeric", "meta": {"p_hat": 0.6}}
{"id": "it1-0001", "prompt": "Which is larger, (A) 2 or (B) 3?", "answer": "B", "checker": "choice"}
JSONL
"$k" export verl --env "jsonl:$tmp/pool.jsonl" --out "$tmp/pool" >/dev/null
"$k" export verl --env arith --tasks 20 --shots 2 --split test --out "$tmp/arith" >/dev/null
"$venv/bin/python" tests/verl_export.py "$tmp/pool/train.parquet" "$tmp/arith/test.parquet"
python3 - "$tmp/pool/compute_score.py" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("score", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
num = {"checker": "numeric"}
assert m.compute_score("arith", "so 12 * 25 = 300 \\boxed{300}", "300", num) == 1.0
assert m.compute_score("arith", "\\boxed{1,200.0}", "1200", num) == 1.0
assert m.compute_score("arith", "\\boxed{301}", "300", num) == 0.0
assert m.compute_score("arith", "300", "300", num) == 0.0, "no boxed answer"
assert m.compute_score("arith", "\\boxed{1} then \\boxed{300}", "300", num) == 1.0, "the last boxed"
assert m.compute_score("q", "\\boxed{(b)}", "B", {"checker": "choice"}) == 1.0
assert m.compute_score("q", "\\boxed{A}", "B", {"checker": "choice"}) == 0.0
assert m.compute_score("q", "\\boxed{Paris  France}", "Paris France", {"checker": "exact"}) == 1.0
assert m.compute_score("q", "\\boxed{\\frac{3}{4}}", "\\frac{3}{4}", None) == 1.0, "nested braces"
assert m.compute_score("q", "<answer>300</answer>", "300", num) == 1.0, "kaizen's answer tag"
assert m.compute_score("q", "\\boxed{1} <answer>300</answer>", "300", num) == 1.0, "the later of the two"
# A task's own tolerance (arith level 4: abs 0.005), from extra_info.
lvl4 = {"checker": "numeric", "rel_tol": 1e-6, "abs_tol": 0.005}
assert m.compute_score("arith:4", "\\boxed{$497.66}", "497.6640", lvl4) == 1.0
assert m.compute_score("arith:4", "\\boxed{497.67}", "497.6640", lvl4) == 0.0
print("compute_score: right and wrong answers scored as kaizen's checkers do")
PY
