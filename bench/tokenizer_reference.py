"""Writes llama.cpp's tokenisation of a fixed corpus, the reference kaizen's GGUF tokenizer is
tested against (crates/models/tests/tokenizer_reference.rs).

Usage: bench/tokenizer_reference.sh  (builds llama.cpp once, then runs this)
"""
import json
import sys

from llama_cpp import Llama

CORPUS = [
    "Hello world", " leading space", "trailing space ", "multiple   spaces  here", "tabs\tand\nnewlines\n\n\nend",
    "12345 + 67890 = 80235", "3.14159 and 2.71828", "1,000,000 dollars", "version 0.11.1-rc.3", "x=-17*23/4.5e-3",
    "café naïve résumé façade", "Straße groß", "日本語のテキストです。", "中文测试", "한국어", "Ελληνικά", "русский текст",
    "עברית", "العربية", "emoji 🎉🚀👩‍💻", "Ω≈ç√∫˜µ≤≥÷", "a\u00a0b\u2009c", "\u200bzero width",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>plain after",
    '<tool_call>{"name": "python", "arguments": {"code": "print(17*23)"}}</tool_call>',
    "The answer is \\boxed{391}.", "<answer>42</answer>", "def f(x):\n    return x**2\n\nprint(f(3))",
    "don't won't it's I'm we've they'll", "UPPER lower MiXeD cAsE", "https://example.com/a?b=c&d=e#f",
    "   ", "\n", "!!!???...", "$ 5.00 €3 £2 ¥100", "snake_case camelCase kebab-case", "0000 0123 999999999",
    "Line one.\r\nLine two.\r\n", "  indented\n\tand tabbed", "The quick brown fox jumps over the lazy dog.",
]


def main(model_path, out_path):
    llm = Llama(model_path=model_path, vocab_only=True, verbose=False)
    with open(out_path, "w", encoding="utf-8") as f:
        for text in CORPUS:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            f.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")
    print(f"wrote {len(CORPUS)} reference tokenisations to {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
