"""llama.cpp's logits for the tiny llama / qwen2 / qwen3 GGUFs (written by
`cargo run --release -p kaizen-models --example tiny_gguf DIR`): the reference for
crates/models/tests/architectures.rs. Prints JSON lines: arch, top-20 ids and logits, and the
logits of ids 0..50 at the last prompt position."""
import json
import sys

import numpy as np
from llama_cpp import Llama

PROMPT = [1, 4093, 198, 19556, 905, 30, 216, 35, 36, 37]
for path in sys.argv[1:]:
    arch = path.rsplit("tiny-", 1)[1].removesuffix(".gguf")
    llm = Llama(model_path=path, n_ctx=64, n_threads=1, type_k=0, type_v=0, logits_all=True, verbose=False)
    llm.eval(PROMPT)
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    top = np.argsort(-logits)[:20]
    print(json.dumps({"arch": arch, "top_ids": top.tolist(), "top_logits": logits[top].tolist(),
                      "first_logits": logits[:50].tolist()}))
