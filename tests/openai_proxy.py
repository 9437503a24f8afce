"""The official `openai` Python client, unchanged, against the Best-of-Q proxy
(`kaizen serve --upstream … --q …`) in front of `kaizen serve`. argv: proxy base URL, the
proxy's decisions.jsonl."""
import json
import sys
import urllib.request

import openai

base, decisions = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=120)

r = client.chat.completions.create(
    model="smollm2", messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8, temperature=1.0)
assert len(r.choices) == 1 and r.choices[0].message.content, r
extra = r.model_extra["kaizen"]
assert extra["candidates"] >= 2 and len(extra["q_scores"]) == extra["candidates"], extra
print(f"ok   proxy chat: {extra['candidates']} candidates, chose {extra['chosen']}, scores {extra['q_scores']}")

try:
    client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "x"}], stream=True)
    raise AssertionError("streaming should be refused")
except openai.BadRequestError as e:
    assert "stream" in str(e), e
print("ok   proxy refuses streaming with an OpenAI-style 400")

req = urllib.request.Request(f"{base}/feedback", data=json.dumps({"episode_id": extra["episode_id"], "reward": 1}).encode(),
                             headers={"Content-Type": "application/json"})
assert json.load(urllib.request.urlopen(req))["ok"] is True
lines = [json.loads(l) for l in open(decisions)]
assert lines[0]["episode_id"] == extra["episode_id"] and lines[-1]["feedback"]["reward"] == 1, lines
print("ok   proxy decisions and feedback logged")
