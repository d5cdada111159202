"""Muon on the layers' matrices, AdamW on the embeddings and lm_head (microgpt/engines/muon.py).

The state lives in the arrays of the engine's Adam (`m`, `v`, laid out as the flat parameters):
the embedding rows keep Adam's two moments there; each layer matrix keeps its momentum in `m`
and zeros in `v`. So a checkpoint stores either optimizer in the same format.
"""

import numpy as np

from microgpt.engines.muon import NS_COEFFICIENTS, NS_EPS, NS_STEPS, is_muon_param, muon_lr, muon_scale
from microgpt.engines.numpy_engine.optim import Adam
from microgpt.init import param_slices


def newton_schulz(G, steps=NS_STEPS):
    """~ the orthogonal matrix nearest G (U V^T of its SVD U S V^T), by the quintic iteration."""
    a, b, c = NS_COEFFICIENTS
    X = G.T if G.shape[0] > G.shape[1] else G   # wide: X X^T is the smaller Gram matrix
    X = X / (np.linalg.norm(X) + NS_EPS)        # Frobenius norm >= spectral norm: singular values <= 1
    for _ in range(steps):
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X     # each singular value s -> a s + b s^3 + c s^5
    return X.T if G.shape[0] > G.shape[1] else X


class MuonAdamW:
    def __init__(self, adam, config):
        """adam: the engine's Adam (its flat parameters and moments); config: the GPTConfig."""
        slices = param_slices(config)
        k = sum(end - start for name, _, start, end in slices if not is_muon_param(name))
        assert all(is_muon_param(name) == (start >= k) for name, _, start, end in slices)  # embeddings first
        self.k, self.v = k, adam.v
        self.head = Adam(adam.flat[:k])   # AdamW on wte, wpe, lm_head: views of the engine's arrays
        self.head.m, self.head.v = adam.m[:k], adam.v[:k]
        self.mats = [(adam.flat[s:e].reshape(shape), adam.m[s:e].reshape(shape), s, e)
                     for name, shape, s, e in slices if is_muon_param(name)]

    def step(self, grad, lr, t, tc):
        self.head.step(grad[:self.k], lr, t, tc)
        lr_m, mu = muon_lr(tc, lr), tc.muon_momentum
        self.v[self.k:] = 0  # (Muon keeps no second moment: zeros in the checkpoint)
        for w, buf, s, e in self.mats:
            g = grad[s:e].reshape(w.shape)
            buf += (1 - mu) * (g - buf)       # B = mu B + (1 - mu) G
            update = g + mu * (buf - g)       # Nesterov: (1 - mu) G + mu B
            if tc.weight_decay:
                w *= 1 - lr_m * tc.weight_decay
            w -= lr_m * muon_scale(w.shape) * newton_schulz(update)
