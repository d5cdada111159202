"""The GPT as a torch nn.Module: the seed's model (reference.py), batched, on any device.

Parameters are registered under the seed's names (`wte`, `wpe`, `lm_head`, `layer{i}.attn_wq`,
..., shapes [out, in], no biases), so `named_parameters()` is already the checkpoint's layout.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from microgpt.config import RMSNORM_EPS
from microgpt.engines.rope import rope_tables

IGNORE = -1  # target id of padding positions: cross_entropy skips them


def rmsnorm(x):
    # x * (mean(x^2) + eps)^-0.5, no gain: the seed's rmsnorm
    return F.rms_norm(x, (x.size(-1),), eps=RMSNORM_EPS)


def rotate(x, cos, sin):
    """Rotary positions (microgpt/engines/rope.py): x (B, nh, T, hd) turned pair by pair,
    x * cos + rotate_half(x) * sin with rotate_half(x) = [x2, -x1]; cos, sin (T, hd)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([x2, -x1], dim=-1) * sin


class Block(nn.Module):
    """One transformer layer: causal self-attention, then a relu (or relu^2) MLP, each with a residual."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.n_head, self.qk_norm, self.relu2 = config.n_head, config.qk_norm, config.mlp == "relu2"
        self.attn_wq = nn.Parameter(torch.empty(C, C))
        self.attn_wk = nn.Parameter(torch.empty(C, C))
        self.attn_wv = nn.Parameter(torch.empty(C, C))
        self.attn_wo = nn.Parameter(torch.empty(C, C))
        self.mlp_fc1 = nn.Parameter(torch.empty(4 * C, C))
        self.mlp_fc2 = nn.Parameter(torch.empty(C, 4 * C))

    def attention(self, x, cache=None, rope=None):
        B, T, C = x.shape
        heads = lambda t: t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        q, k, v = heads(F.linear(x, self.attn_wq)), heads(F.linear(x, self.attn_wk)), heads(F.linear(x, self.attn_wv))
        if rope is not None:  # (cos, sin) of these T positions
            q, k = rotate(q, *rope), rotate(k, *rope)
        if self.qk_norm:  # after the rotation, as Hugging Face's NanoChat
            q, k = rmsnorm(q), rmsnorm(k)
        if cache is not None:  # generation: keys and values of earlier positions are kept, not recomputed
            if cache:
                assert T == 1, "after the first call, a cache takes one new token at a time"
                k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            cache[:] = [k, v]
        # scores / sqrt(head_dim), softmax, weighted sum of values. is_causal masks the top-left
        # triangle, right for a whole sequence; one new token after a cache may see every key.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=q.size(2) > 1)
        return F.linear(y.transpose(1, 2).reshape(B, T, C), self.attn_wo)

    def forward(self, x, cache=None, dropout=0.0, rope=None):
        # dropout (training only) on what each sub-block adds to the residual stream
        x = x + F.dropout(self.attention(rmsnorm(x), cache, rope), dropout, training=dropout > 0)
        h = F.relu(F.linear(rmsnorm(x), self.mlp_fc1))
        if self.relu2:
            h = h.square()
        x = x + F.dropout(F.linear(h, self.mlp_fc2), dropout, training=dropout > 0)
        return x


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        V, C, T = config.vocab_size, config.n_embd, config.block_size
        self.wte = nn.Parameter(torch.empty(V, C))
        if config.pos == "learned":
            self.wpe = nn.Parameter(torch.empty(T, C))
        else:  # rope: the cos and sin of every position (buffers: they follow .to(), not saved)
            cos, sin = rope_tables(config.head_dim, T, config.rope_theta)
            self.register_buffer("rope_cos", torch.tensor(cos, dtype=torch.float64), persistent=False)
            self.register_buffer("rope_sin", torch.tensor(sin, dtype=torch.float64), persistent=False)
        self.lm_head = nn.Parameter(torch.empty(V, C))
        for i in range(config.n_layer):
            self.add_module(f"layer{i}", Block(config))  # so its parameters are named layer{i}.attn_wq, ...

    def blocks(self):
        return [getattr(self, f"layer{i}") for i in range(self.config.n_layer)]

    def forward(self, idx, targets=None, weights=None, pos0=0, caches=None, dropout=0.0):
        """idx (B, T) token ids at positions pos0.. -> logits (B, T, V); with targets, the SUM of the
        token losses (padding targets are IGNORE), each times its weight where weights (B, T) are
        given. caches (sampling): per layer a list holding that layer's keys and values so far."""
        T, cfg = idx.size(1), self.config
        x = F.embedding(idx, self.wte)
        rope = None
        if cfg.pos == "learned":
            x = x + self.wpe[pos0:pos0 + T]
        else:
            rope = (self.rope_cos[pos0:pos0 + T], self.rope_sin[pos0:pos0 + T])
        x = rmsnorm(x)
        for i, block in enumerate(self.blocks()):
            x = block(x, None if caches is None else caches[i], dropout, rope)
        if cfg.final_norm:
            x = rmsnorm(x)
        logits = F.linear(x, self.lm_head)
        if cfg.softcap:
            logits = cfg.softcap * torch.tanh(logits / cfg.softcap)
        if targets is None:
            return logits
        losses = token_losses(logits, targets)
        return losses.sum() if weights is None else (losses * weights).sum()


def token_losses(logits, targets):
    """(B, T) -log softmax(logits)[target]; 0 where the target is IGNORE (padding).
    Under bf16 autocast, cross_entropy runs in float32."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="none").view(targets.shape)
