"""Reads `kaizen export verl` output with pyarrow and checks it against verl's RL dataset
schema (data_source, prompt as chat messages, ability, reward_model, extra_info)."""
import sys

import pyarrow as pa
import pyarrow.parquet as pq

pool = pq.read_table(sys.argv[1])
want = {
    "data_source": pa.string(),
    "prompt": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
    "ability": pa.string(),
    "reward_model": pa.struct([("style", pa.string()), ("ground_truth", pa.string())]),
}


def shape(t):
    """A type without field nullability or the list's element name (which readers ignore)."""
    if pa.types.is_list(t):
        return ("list", shape(t.value_type))
    if pa.types.is_struct(t):
        return ("struct", tuple((t.field(i).name, shape(t.field(i).type)) for i in range(t.num_fields)))
    return str(t)


for name, typ in want.items():
    got = pool.schema.field(name).type
    assert shape(got) == shape(typ), f"{name}: {got} != {typ}"
extra = pool.schema.field("extra_info").type
assert {extra.field(i).name for i in range(extra.num_fields)} == {"split", "index", "task_id", "checker", "rel_tol", "abs_tol", "p_hat"}
rows = pool.to_pylist()
assert len(rows) == 2, rows
first, second = rows
assert first["data_source"].startswith("jsonl:")
assert [m["role"] for m in first["prompt"]] == ["system", "user"]
assert first["prompt"][1]["content"] == "A shop sells 12 boxes of 25 pens. How many pens?"
assert first["reward_model"] == {"style": "rule", "ground_truth": "300"}
assert first["extra_info"]["p_hat"] == 0.6 and first["extra_info"]["checker"] == "numeric"
assert first["extra_info"]["index"] == 0 and first["extra_info"]["split"] == "train"
assert second["extra_info"]["p_hat"] is None and second["extra_info"]["checker"] == "choice"
assert first["extra_info"]["rel_tol"] == 1e-6 and first["extra_info"]["abs_tol"] == 0.0
assert second["extra_info"]["rel_tol"] is None

arith = pq.read_table(sys.argv[2]).to_pylist()
assert len(arith) == 20
roles = [m["role"] for m in arith[0]["prompt"]]
# System turn, two worked examples (user, assistant with the call, tool, assistant answer), the task.
assert roles[0] == "system" and roles[-1] == "user" and "tool" in roles and roles.count("user") == 3, roles
assert all(r["extra_info"]["split"] == "test" for r in arith)
assert len({r["prompt"][-1]["content"] for r in arith}) > 1
print(f"pyarrow: {len(rows)} pool rows and {len(arith)} arith rows match verl's schema")
