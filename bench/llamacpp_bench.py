"""llama.cpp's prefill and decode tokens/s on the same GGUF, prompt and token counts as
`kaizen bench generate` (greedy, end-of-sequence ignored, best of N). Prints one JSON line."""
import argparse
import json
import time

import numpy as np
from llama_cpp import Llama

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--prompt-tokens", type=int, default=128)
p.add_argument("--gen-tokens", type=int, default=64)
p.add_argument("--repeats", type=int, default=3)
a = p.parse_args()

TEXT = "The quick brown fox jumps over the lazy dog while the curious cat watches from the warm windowsill. " * 64
llm = Llama(model_path=a.model, n_ctx=1024, n_batch=512, n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
prompt = llm.tokenize(TEXT.encode(), add_bos=False)[: a.prompt_tokens]


def last_logits():
    # llama-cpp-python 0.3.x keeps `scores` only with logits_all; read the context's last row.
    return np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))


llm.reset()
llm.eval(prompt[:16])  # warm-up
best_pp, best_tg = float("inf"), float("inf")
for _ in range(a.repeats):
    llm.reset()
    t = time.perf_counter()
    llm.eval(prompt)
    best_pp = min(best_pp, time.perf_counter() - t)
    tok = int(np.argmax(last_logits()))
    t = time.perf_counter()
    for _ in range(a.gen_tokens):
        llm.eval([tok])
        tok = int(np.argmax(last_logits()))
    best_tg = min(best_tg, time.perf_counter() - t)
print(json.dumps({"engine": "llama.cpp", "threads": a.threads, "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens,
                  "prefill_tps": a.prompt_tokens / best_pp, "decode_tps": a.gen_tokens / best_tg}))
