"""llama.cpp's logits for the tiny llama / qwen2 / qwen3 / gemma3 GGUFs (written by
`cargo run --release -p kaizen-models --example tiny_gguf DIR`), and for gemma3 its
SentencePiece tokenisation of a small corpus: the reference for
crates/models/tests/architectures.rs. Prints one JSON line per model."""
import json
import sys

import numpy as np
from llama_cpp import Llama

PROMPT = [1, 4093, 198, 19556, 905, 30, 216, 35, 36, 37]
GEMMA_PROMPT = [2, 4, 280, 281, 270, 271, 290, 268, 275, 5]
SPM_CORPUS = ["hello world", "the cat is on the mat", " leading and  double  spaces ", "<start_of_turn>user\nhi there<end_of_turn>",
              "Mode-l: 42!", "unicode: café ☕ 日本", "<bos>the<eos>", "tabs\tand\nnewlines", "", "zzz yyy"]
for path in sys.argv[1:]:
    arch = path.rsplit("tiny-", 1)[1].removesuffix(".gguf")
    llm = Llama(model_path=path, n_ctx=64, n_threads=1, type_k=0, type_v=0, logits_all=True, verbose=False)
    prompt = GEMMA_PROMPT if arch == "gemma3" else PROMPT
    llm.eval(prompt)
    logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float64)
    top = np.argsort(-logits)[:20]
    row = {"arch": arch, "top_ids": top.tolist(), "top_logits": logits[top].tolist(), "first_logits": logits[:50].tolist()}
    if arch == "gemma3":
        row["tokens"] = [{"text": t, "ids": llm.tokenize(t.encode(), add_bos=False, special=True)} for t in SPM_CORPUS]
    print(json.dumps(row, ensure_ascii=False))
