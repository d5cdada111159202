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
    """~ the orthogonal matrix nearest G, by the quintic iteration (as the numpy engine's); G is one
    matrix [out, in] or a stack [n, out, in], each orthogonalised on its own."""
    a, b, c = NS_COEFFICIENTS
    tall = G.size(-2) > G.size(-1)
    X = G.mT if tall else G
    X = X / (torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True) + NS_EPS)
    for _ in range(steps):
        A = X @ X.mT
        X = a * X + (b * A + c * A @ A) @ X
    return X.mT if tall else X


@torch.no_grad()
def muon_step(params, bufs, lr, momentum, weight_decay):
    """One Muon update of each parameter p (its gradient p.grad) with momentum buffer buf; the
    matrices of one shape are orthogonalised together, as one stack."""
    groups = {}
    for p, buf in zip(params, bufs):
        g = p.grad
        buf.add_((1 - momentum) * (g - buf))   # B = mu B + (1 - mu) G
        groups.setdefault(tuple(p.shape), []).append((p, g + momentum * (buf - g)))  # Nesterov: (1 - mu) G + mu B
    for shape, members in groups.items():
        O = newton_schulz(torch.stack([u for _, u in members]))
        for (p, _), o in zip(members, O):
            if weight_decay:
                p.mul_(1 - lr * weight_decay)
            p.sub_(lr * muon_scale(shape) * o)
