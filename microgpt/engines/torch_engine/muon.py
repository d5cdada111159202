"""Muon for the torch engine (microgpt/engines/muon.py), written here rather than torch.optim.Muon.

torch 2.13's torch.optim.Muon is the same algorithm (with adjust_lr_fn "original" and nesterov),
but it always iterates Newton-Schulz in bfloat16 and divides by max(|G|, eps) instead of
|G| + eps: its update agrees with this one only to bfloat16 precision (tests/test_modern.py),
so a float64 run could not equal the numpy engine's. Here the iteration runs in the parameters'
dtype. The momentum lives in Adam's `exp_avg` of the matrix, so checkpoints keep one format.
"""

import torch

from microgpt.engines.muon import NS_COEFFICIENTS, NS_EPS, NS_STEPS, muon_scale


def newton_schulz(G, steps=NS_STEPS):
    """~ the orthogonal matrix nearest G, by the quintic iteration (as the numpy engine's)."""
    a, b, c = NS_COEFFICIENTS
    wide = G.size(0) <= G.size(1)
    X = G if wide else G.T
    X = X / (torch.linalg.vector_norm(X) + NS_EPS)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    return X if wide else X.T


@torch.no_grad()
def muon_step(params, bufs, lr, momentum, weight_decay):
    """One Muon update of each parameter p (its gradient p.grad) with momentum buffer buf."""
    for p, buf in zip(params, bufs):
        g = p.grad
        buf.add_((1 - momentum) * (g - buf))   # B = mu B + (1 - mu) G
        update = g + momentum * (buf - g)      # Nesterov: (1 - mu) G + mu B
        if weight_decay:
            p.mul_(1 - lr * weight_decay)
        p.sub_(lr * muon_scale(p.shape) * newton_schulz(update))
