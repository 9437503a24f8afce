"""PyTorch peer of `kaizen bench train`: the identical llama-architecture transformer
(pre-norm RMSNorm blocks, causal grouped-query attention with interleaved rotary embeddings, a
SwiGLU MLP, no biases, output layer tied to the embedding), the same batch shape, next-token
loss and AdamW step, on the CPU with the same number of threads. Either every weight trains
(the tiny model on the 261-token byte vocabulary) or, with --lora-rank R, the base is frozen
and LoRA adapters y = x W^T + (alpha / R) (x A^T) B^T on q, k, v and the attention output
train (SmolLM2's sizes; random base weights: the speed does not depend on them). With
--compile the model runs under `torch.compile` (the inductor backend, which generates C++ for
the CPU; forward and backward compiled, AdamW eager as `torch.compile(model)` leaves it) — how
PyTorch's users make CPU training fast. Compilation happens in the untimed warm-up steps.
Prints one JSON line."""

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(w))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


def rope_i(x, cos, sin):
    """Rotates each pair (x[2i], x[2i+1]) at position p by p * theta_i."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


class LoRA(nn.Module):
    """A frozen linear layer plus a trained rank-r update (B starts at zero)."""

    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(base.in_features))
        self.b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x):
        return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale


class Block(nn.Module):
    def __init__(self, w, h, kvh, ffn):
        super().__init__()
        self.h, self.kvh = h, kvh
        kv = kvh * (w // h)
        self.attn_norm, self.ffn_norm = RMSNorm(w), RMSNorm(w)
        self.q, self.o = nn.Linear(w, w, bias=False), nn.Linear(w, w, bias=False)
        self.k, self.v = nn.Linear(w, kv, bias=False), nn.Linear(w, kv, bias=False)
        self.gate, self.up = nn.Linear(w, ffn, bias=False), nn.Linear(w, ffn, bias=False)
        self.down = nn.Linear(ffn, w, bias=False)

    def forward(self, x, cos, sin):
        b, t, w = x.shape
        xn = self.attn_norm(x)
        heads = lambda y, n: y.view(b, t, n, w // self.h).transpose(1, 2)
        q = rope_i(heads(self.q(xn), self.h), cos, sin)
        k, v = rope_i(heads(self.k(xn), self.kvh), cos, sin), heads(self.v(xn), self.kvh)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kvh != self.h)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, w))
        xn = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(xn)) * self.up(xn))


class Llama(nn.Module):
    def __init__(self, vocab, layers, w, h, kvh, ffn, context, rope_base, prev_token):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(vocab, w) * 0.02)
        # kaizen's policy.prev_token: an embedding of each position's previous token (row
        # `vocab`: none) added to the input.
        self.prev = nn.Parameter(torch.randn(vocab + 1, w) * 0.02) if prev_token else None
        self.blocks = nn.ModuleList(Block(w, h, kvh, ffn) for _ in range(layers))
        self.norm = RMSNorm(w)
        hd = w // h
        inv = 1.0 / (rope_base ** (torch.arange(0, hd // 2).float() * 2 / hd))
        angles = torch.arange(context).float()[:, None] * inv[None, :]
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())

    def forward(self, ids):
        t = ids.shape[1]
        x = self.embed[ids]
        if self.prev is not None:
            before = torch.full_like(ids[:, :1], self.embed.shape[0])
            x = x + self.prev[torch.cat([before, ids[:, :-1]], dim=1)]
        for b in self.blocks:
            x = b(x, self.cos[:t], self.sin[:t])
        return self.norm(x) @ self.embed.t()


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 4), ("width", 256), ("heads", 4), ("kv-heads", 0), ("ffn", 0), ("vocab", 261),
                          ("context", 256), ("batch", 8), ("steps", 10), ("threads", 2), ("lora-rank", 0)]:
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--rope-base", type=float, default=10000.0)
    p.add_argument("--prev-token", type=int, default=0)
    p.add_argument("--compile", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a.vocab, a.layers, a.width, a.heads, a.kv_heads or a.heads, a.ffn or 4 * a.width, a.context,
                  a.rope_base, bool(a.prev_token))
    base = sum(p.numel() for p in model.parameters())
    if a.lora_rank:
        model.requires_grad_(False)
        for blk in model.blocks:
            for name in ("q", "k", "v", "o"):
                setattr(blk, name, LoRA(getattr(blk, name), a.lora_rank, 2.0 * a.lora_rank))
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=1e-3)
    ids = torch.randint(32, 127, (a.batch, a.context)) if a.vocab == 261 else torch.randint(0, a.vocab, (a.batch, a.context))
    forward = torch.compile(model) if a.compile else model

    def step():
        logits = forward(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):  # warm-up; under --compile the first steps compile
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    secs = time.perf_counter() - start
    tokens = a.batch * (a.context - 1) * a.steps
    print(json.dumps({"bench": "train", "peer": f"pytorch {torch.__version__} " + ("torch.compile" if a.compile else "eager"), "parameters": base,
                      "trainable_parameters": sum(p.numel() for p in trained),
                      "tokens_per_second": tokens / secs, "ms_per_step": 1e3 * secs / a.steps, "loss": loss}))


if __name__ == "__main__":
    main()
