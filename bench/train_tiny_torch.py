"""PyTorch peer of `kaizen bench train`: the identical tiny transformer (learned token and
position embeddings, pre-norm RMSNorm blocks, causal multi-head attention with qkv bias, a
tanh-GELU MLP of 4x width, tied output layer), the same batch shape, next-token loss and
AdamW step, on the CPU with the same number of threads. Prints one JSON line."""

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


class Block(nn.Module):
    def __init__(self, w, h):
        super().__init__()
        self.h = h
        self.attn_norm, self.mlp_norm = RMSNorm(w), RMSNorm(w)
        self.qkv, self.out = nn.Linear(w, 3 * w), nn.Linear(w, w)
        self.up, self.down = nn.Linear(w, 4 * w), nn.Linear(4 * w, w)

    def forward(self, x):
        b, t, w = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, t, 3, self.h, w // self.h).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, w))
        return x + self.down(F.gelu(self.up(self.mlp_norm(x)), approximate="tanh"))


class Tiny(nn.Module):
    def __init__(self, vocab, layers, w, h, context):
        super().__init__()
        self.embed = nn.Parameter(torch.randn(vocab, w) * 0.02)
        self.positions = nn.Parameter(torch.randn(context, w) * 0.02)
        self.blocks = nn.ModuleList(Block(w, h) for _ in range(layers))
        self.norm = RMSNorm(w)

    def forward(self, ids):
        x = self.embed[ids] + self.positions[: ids.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.norm(x) @ self.embed.t()


def main():
    p = argparse.ArgumentParser()
    for name, default in [("layers", 4), ("width", 256), ("heads", 4), ("context", 256), ("batch", 8), ("steps", 10), ("threads", 2)]:
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Tiny(259, a.layers, a.width, a.heads, a.context)
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
