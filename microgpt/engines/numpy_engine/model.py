"""The GPT of reference.py over a batch, built from the Tensor operations in tensor.py.

The same model as the python engine's `textbook.gpt`, but all positions of all sequences at
once: where the seed loops over tokens and keeps a KV cache, training here sees the whole
[B, T] batch and causal attention hides the future instead.
"""

import numpy as np

from microgpt.engines.numpy_engine.modern import head_rmsnorm, relu2, rope, softcap
from microgpt.engines.numpy_engine.tensor import (
    Tensor,
    causal_attention,
    cross_entropy,
    embedding,
    linear,
    relu,
    rmsnorm,
)


def gpt(params, config, idx, pos0=0, cache=None, drop=None, record=None):
    """Logits [B, T, vocab] for token ids `idx` [B, T] at positions pos0 .. pos0 + T - 1.

    `cache` (sampling only): per layer a dict whose "k" and "v" arrays [B, t, C] hold the keys
    and values of the t earlier positions; this call appends its own. No gradient flows
    through the cache.
    `drop` (training only): a function applying dropout to what each attention and MLP block
    adds to the residual stream.
    `record` (pictures only): a list that each layer's attention probabilities
    [B, n_head, T, t] are appended to, layer by layer.
    """
    drop = drop or (lambda x: x)
    B, T = idx.shape
    x = embedding(params["wte"], idx)
    if config.pos == "learned":  # (rope: positions turn q and k inside attention instead)
        x = x + embedding(params["wpe"], np.arange(pos0, pos0 + T))
    x = rmsnorm(x)
    for li in range(config.n_layer):
        name = f"layer{li}."
        # 1) multi-head causal self-attention
        x_residual = x
        x = rmsnorm(x)
        q = linear(x, params[name + "attn_wq"])
        k = linear(x, params[name + "attn_wk"])
        v = linear(x, params[name + "attn_wv"])
        if config.pos == "rope":
            q, k = rope(q, config.n_head, pos0, config), rope(k, config.n_head, pos0, config)
        if config.qk_norm:  # after the rotation, as Hugging Face's NanoChat
            q, k = head_rmsnorm(q, config.n_head), head_rmsnorm(k, config.n_head)
        if cache is not None:
            c = cache[li]
            c["k"] = k.data if c["k"] is None else np.concatenate([c["k"], k.data], axis=1)
            c["v"] = v.data if c["v"] is None else np.concatenate([c["v"], v.data], axis=1)
            k, v = Tensor(c["k"]), Tensor(c["v"])
        x = causal_attention(q, k, v, config.n_head, record)
        x = drop(linear(x, params[name + "attn_wo"])) + x_residual
        # 2) MLP
        x_residual = x
        x = rmsnorm(x)
        x = linear(x, params[name + "mlp_fc1"])
        x = relu2(x) if config.mlp == "relu2" else relu(x)
        x = drop(linear(x, params[name + "mlp_fc2"])) + x_residual
    if config.final_norm:
        x = rmsnorm(x)
    logits = linear(x, params["lm_head"])
    return softcap(logits, config.softcap) if config.softcap else logits


def loss(params, config, inputs, targets, weights, drop=None):
    """Cross-entropy of a padded batch: each target token's loss times its weight, summed."""
    return cross_entropy(gpt(params, config, inputs, drop=drop), targets, weights)
