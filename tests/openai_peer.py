"""The official `openai` Python client, unchanged, against `kaizen serve` (argv[1] = base URL)."""
import sys

import openai
from peer_check import check, finish

client = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0, timeout=120)


def models():
    ids = [m.id for m in client.models.list().data]
    assert "smollm2" in ids and "all-minilm-l6-v2" in ids, ids


def chat_with_logprobs():
    r = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=10, temperature=0.8, seed=3, n=2, logprobs=True, top_logprobs=3)
    assert len(r.choices) == 2
    for c in r.choices:
        assert c.message.role == "assistant" and c.message.content
        assert c.finish_reason in ("stop", "length")
        lp = c.logprobs.content
        assert lp and all(t.logprob <= 0 for t in lp) and len(lp[0].top_logprobs) == 3
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def same_seed_same_answer():
    kw = dict(model="smollm2", messages=[{"role": "user", "content": "Say something."}], max_tokens=12, temperature=1.0, seed=11)
    a = client.chat.completions.create(**kw).choices[0].message.content
    b = client.chat.completions.create(**kw).choices[0].message.content
    assert a == b, (a, b)


def streaming():
    kw = dict(model="smollm2", messages=[{"role": "user", "content": "Count to five."}], max_tokens=20, temperature=0)
    full = client.chat.completions.create(**kw).choices[0].message.content
    parts = [ch.choices[0].delta.content or "" for ch in client.chat.completions.create(stream=True, **kw) if ch.choices]
    assert "".join(parts) == full, ("".join(parts), full)


def stop_and_tools():
    tools = [{"type": "function", "function": {"name": "calculator", "description": "Evaluate arithmetic",
              "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]}}}]
    r = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "What is 17*23? Use the calculator."}],
        tools=tools, max_tokens=40, temperature=0, stop=["</tool_call>"])
    assert r.choices[0].message.content is not None


def embeddings():
    r = client.embeddings.create(model="all-minilm-l6-v2", input=["The weather is lovely today.", "It's so sunny outside!"])
    a, b = r.data[0].embedding, r.data[1].embedding
    cos = sum(x * y for x, y in zip(a, b))
    assert len(a) == 384 and abs(cos - 0.6660) < 5e-4, cos


def errors():
    try:
        client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "x"}], temperature=-1)
        raise AssertionError("no error")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "temperature" in str(e)
    try:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("no error")
    except openai.NotFoundError as e:
        assert e.status_code == 404


for name, fn in [("models", models), ("chat with logprobs", chat_with_logprobs), ("same seed", same_seed_same_answer),
                 ("streaming", streaming), ("stop and tools", stop_and_tools), ("embeddings", embeddings), ("errors", errors)]:
    check(name, fn)
finish()
