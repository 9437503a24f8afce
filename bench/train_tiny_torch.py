"""PyTorch peer of `kaizen bench train`: the identical tiny llama-architecture transformer
(pre-norm RMSNorm blocks, causal multi-head attention with interleaved rotary embeddings, a
SwiGLU MLP of 4x width, no biases, output layer tied to the embedding, 261-token byte
vocabulary), the same batch shape, next-token loss and AdamW step, on the CPU with the same
number of threads. Prints one JSON line."""

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


class Block(nn.Module):
    def __init__(self, w, h):
        super().__init__()
        self.h = h
        self.attn_norm, self.ffn_norm = RMSNorm(w), RMSNorm(w)
        self.q, self.k, self.v, self.o = (nn.Linear(w, w, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(w, 4 * w, bias=False), nn.Linear(w, 4 * w, bias=False)
        self.down = nn.Linear(4 * w, w, bias=False)

    def forward(self, x, cos, sin):
        b, t, w = x.shape
        xn = self.attn_norm(x)
        heads = lambda y: y.view(b, t, self.h, w // self.h).transpose(1, 2)
        q, k, v = rope_i(heads(self.q(xn)), cos, sin), rope_i(heads(self.k(xn)), cos, sin), heads(self.v(xn))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, w))
        xn = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(xn)) * self.up(xn))


class Tiny(nn.Module):
    def __init__(self, vocab, layers, w, h, context):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(vocab, w) * 0.02)
        self.blocks = nn.ModuleList(Block(w, h) for _ in range(layers))
        self.norm = RMSNorm(w)
        hd = w // h
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd // 2).float() * 2 / hd))
        angles = torch.arange(context).float()[:, None] * inv[None, :]
        self.register_buffer("cos", angles.cos())
        self.register_buffer("sin", angles.sin())

    def forward(self, ids):
        t = ids.shape[1]
        x = self.embed[ids]
        for b in self.blocks:
            x = b(x, self.cos[:t], self.sin[:t])
        return self.norm(x) @ self.embed.t()


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 4), ("width", 256), ("heads", 4), ("context", 256), ("batch", 8), ("steps", 10), ("threads", 2)]:
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Tiny(261, a.layers, a.width, a.heads, a.context)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(32, 127, (a.batch, a.context))

    def step():
        logits = model(ids[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    step()
    step()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    secs = time.perf_counter() - start
    tokens = a.batch * (a.context - 1) * a.steps
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"bench": "train", "peer": f"pytorch {torch.__version__}", "parameters": params,
                      "tokens_per_second": tokens / secs, "ms_per_step": 1e3 * secs / a.steps, "loss": loss}))


if __name__ == "__main__":
    main()
