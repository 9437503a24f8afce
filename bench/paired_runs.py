#!/usr/bin/env python3
"""Paired difference in success between two sets of outcomes over the same tasks.

    python3 bench/paired_runs.py runs/sgt-sft runs/sgt-grpo
    python3 bench/paired_runs.py "runs/sg-rerank/eval_rerank.json#max log-prob of N" \
        "runs/sg-rerank/eval_rerank.json#Best-of-Q"

Each side is a `kaizen run` directory (its tasks matched by id) or a row of a `kaizen
eval-rerank --out` table (`FILE#ROW`; rows of tables over the same tasks are matched by position).
A run directory should hold one episode per task (`--samples 1`): a later one replaces an earlier.

Prints each run's success on the tasks both ran, and B − A with a 95% percentile interval from
4,000 paired-bootstrap resamples of the tasks (seeded: the same numbers every time). Only the
standard library; a task is matched by its id, its outcome is reward > 0.5 (kaizen's success).
"""
import json
import random
import sys


def outcomes(run):
    if "#" in run:
        path, row = run.split("#", 1)
        with open(path) as f:
            table = json.load(f)
        rows = [r for r in table["rows"] if r["selection"] == row]
        if not rows:
            sys.exit(f"{path} has no row {row!r}")
        return {f"{i:05}-{key}": ok for i, (key, ok) in enumerate(zip(table["tasks"], rows[0]["solved"]))}
    out = {}
    with open(f"{run}/trajectories.jsonl") as f:
        for line in f:
            if line.strip():
                t = json.loads(line)
                out[t["task"]["id"]] = t["reward"] > 0.5
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = outcomes(sys.argv[1]), outcomes(sys.argv[2])
    keys = sorted(set(a) & set(b))
    if not keys:
        sys.exit("the two runs share no task")
    d = [b[k] - a[k] for k in keys]
    n = len(d)
    rng = random.Random(0)
    means = sorted(sum(d[rng.randrange(n)] for _ in range(n)) / n for _ in range(4000))
    pct = lambda x: f"{100 * x:+.1f}"
    print(f"{n} tasks: A {100 * sum(a[k] for k in keys) / n:.1f}%, B {100 * sum(b[k] for k in keys) / n:.1f}%")
    print(f"B - A: {pct(sum(d) / n)} pts (95% {pct(means[100])} to {pct(means[3899])})")


if __name__ == "__main__":
    main()
