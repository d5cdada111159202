"""The GPT as a torch nn.Module: the seed's model (DESIGN.md §3.1), batched, on any device.

Parameters are registered under the seed's names (`wte`, `wpe`, `lm_head`, `layer{i}.attn_wq`,
..., shapes [out, in], no biases), so `named_parameters()` is already the checkpoint's layout.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from microgpt.config import RMSNORM_EPS

IGNORE = -1  # target id of padding positions: cross_entropy skips them


def rmsnorm(x):
    # x * (mean(x^2) + eps)^-0.5, no gain: the seed's rmsnorm
    return F.rms_norm(x, (x.size(-1),), eps=RMSNORM_EPS)


class Block(nn.Module):
    """One transformer layer: causal self-attention, then a relu MLP, each with a residual."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.attn_wq = nn.Parameter(torch.empty(C, C))
        self.attn_wk = nn.Parameter(torch.empty(C, C))
        self.attn_wv = nn.Parameter(torch.empty(C, C))
        self.attn_wo = nn.Parameter(torch.empty(C, C))
        self.mlp_fc1 = nn.Parameter(torch.empty(4 * C, C))
        self.mlp_fc2 = nn.Parameter(torch.empty(C, 4 * C))

    def attention(self, x, cache=None):
        B, T, C = x.shape
        heads = lambda t: t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        q, k, v = heads(F.linear(x, self.attn_wq)), heads(F.linear(x, self.attn_wk)), heads(F.linear(x, self.attn_wv))
        if cache is not None:  # generation: keys and values of earlier positions are kept, not recomputed
            if cache:
                assert T == 1, "after the first call, a cache takes one new token at a time"
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        # scores / sqrt(head_dim), softmax, weighted sum of values. is_causal masks the top-left
        # triangle, right for a whole sequence; one new token after a cache may see every key.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=q.size(2) > 1)
        return F.linear(y.transpose(1, 2).reshape(B, T, C), self.attn_wo)

    def forward(self, x, cache=None, dropout=0.0):
        # dropout (training only) on what each sub-block adds to the residual stream
        x = x + F.dropout(self.attention(rmsnorm(x), cache), dropout, training=dropout > 0)
        x = x + F.dropout(F.linear(F.relu(F.linear(rmsnorm(x), self.mlp_fc1)), self.mlp_fc2), dropout,
                          training=dropout > 0)
        return x


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        V, C, T = config.vocab_size, config.n_embd, config.block_size
        self.wte = nn.Parameter(torch.empty(V, C))
        self.wpe = nn.Parameter(torch.empty(T, C))
        self.lm_head = nn.Parameter(torch.empty(V, C))
        for i in range(config.n_layer):
            self.add_module(f"layer{i}", Block(config))  # so its parameters are named layer{i}.attn_wq, ...

    def blocks(self):
        return [getattr(self, f"layer{i}") for i in range(self.config.n_layer)]

    def forward(self, idx, targets=None, weights=None, pos0=0, caches=None, dropout=0.0):
        """idx (B, T) token ids at positions pos0.. -> logits (B, T, V); with targets, the SUM of the
        token losses (padding targets are IGNORE), each times its weight where weights (B, T) are
        given. caches (sampling): per layer a list holding that layer's keys and values so far."""
        T = idx.size(1)
        x = rmsnorm(F.embedding(idx, self.wte) + self.wpe[pos0:pos0 + T])
        for i, block in enumerate(self.blocks()):
            x = block(x, None if caches is None else caches[i], dropout)
        logits = F.linear(x, self.lm_head)
        if targets is None:
            return logits
        losses = token_losses(logits, targets)
        return losses.sum() if weights is None else (losses * weights).sum()


def token_losses(logits, targets):
    """(B, T) -log softmax(logits)[target]; 0 where the target is IGNORE (padding).
    Under bf16 autocast, cross_entropy runs in float32."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="none").view(targets.shape)
