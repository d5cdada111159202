"""Muon on the layers' matrices, AdamW on the embeddings and lm_head (microgpt/engines/muon.py).

The state lives in the arrays of the engine's Adam (`m`, `v`, laid out as the flat parameters):
the embedding rows keep Adam's two moments there; each layer matrix keeps its momentum in `m`
and zeros in `v`. So a checkpoint stores either optimizer in the same format.
"""

import numpy as np

from microgpt.engines.muon import NS_COEFFICIENTS, NS_EPS, NS_STEPS, is_muon_param, muon_lr, muon_scale
from microgpt.engines.numpy_engine.optim import Adam
from microgpt.params import param_slices


def newton_schulz(G, steps=NS_STEPS):
    """~ the orthogonal matrix nearest G (U V^T of its SVD U S V^T), by the quintic iteration; G is
    one matrix [out, in] or a stack of them [n, out, in], each orthogonalised on its own."""
    a, b, c = NS_COEFFICIENTS
    tall = G.shape[-2] > G.shape[-1]
    X = G.swapaxes(-1, -2) if tall else G  # wide: X X^T is the smaller Gram matrix
    X = X / (np.linalg.norm(X, axis=(-2, -1), keepdims=True) + NS_EPS)  # Frobenius >= spectral: all s <= 1
    for _ in range(steps):
        A = X @ X.swapaxes(-1, -2)
        X = a * X + (b * A + c * A @ A) @ X     # each singular value s -> a s + b s^3 + c s^5
    return X.swapaxes(-1, -2) if tall else X


class MuonAdamW:
    def __init__(self, adam, config):
        """adam: the engine's Adam (its flat parameters and moments); config: the GPTConfig."""
        slices = param_slices(config)
        k = sum(end - start for name, _, start, end in slices if not is_muon_param(name))
        assert all(is_muon_param(name) == (start >= k) for name, _, start, end in slices)  # embeddings first
        self.k, self.flat, self.m, self.v = k, adam.flat, adam.m, adam.v
        self.head = Adam(adam.flat[:k])   # AdamW on wte, wpe, lm_head: views of the engine's arrays
        self.head.m, self.head.v = adam.m[:k], adam.v[:k]
        self.groups = {}                  # shape -> [(start, end)]: the matrices orthogonalised together
        for name, shape, start, end in slices:
            if is_muon_param(name):
                self.groups.setdefault(tuple(shape), []).append((start, end))

    def step(self, grad, lr, t, tc):
        k = self.k
        self.head.step(grad[:k], lr, t, tc)
        lr_m, mu = muon_lr(tc, lr), tc.muon_momentum
        buf, g = self.m[k:], grad[k:]     # every layer matrix at once (they lie after the embeddings)
        buf += (1 - mu) * (g - buf)       # B = mu B + (1 - mu) G
        update = g + mu * (buf - g)       # Nesterov: (1 - mu) G + mu B
        update = np.concatenate([np.zeros(k, dtype=update.dtype), update])  # (indexed as the flat arrays)
        self.v[k:] = 0                    # (Muon keeps no second moment: zeros in the checkpoint)
        if tc.weight_decay:
            self.flat[k:] *= 1 - lr_m * tc.weight_decay
        for shape, spans in self.groups.items():
            O = newton_schulz(np.stack([update[s:e].reshape(shape) for s, e in spans]))
            for (s, e), o in zip(spans, O):
                self.flat[s:e] -= (lr_m * muon_scale(shape) * o).ravel()
