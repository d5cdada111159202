"""Adam with bias correction over one flat array that holds every parameter.

Each parameter's array is a view into `flat`, so a whole step is a handful of array operations
however many parameters there are: the seed's per-parameter loop, vectorised.
"""

import numpy as np


class Adam:
    def __init__(self, flat, beta1=0.85, beta2=0.99, eps=1e-8, weight_decay=0.0):
        self.flat = flat                 # every parameter, updated in place
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
        self.m = np.zeros_like(flat)     # first moment: running mean of gradients
        self.v = np.zeros_like(flat)     # second moment: running mean of squared gradients

    def step(self, grad, lr, t):
        """One update with learning rate lr at step t (1-based, for bias correction)."""
        b1, b2 = self.beta1, self.beta2
        if self.weight_decay:  # AdamW: shrink every weight toward 0, apart from the gradient
            self.flat *= 1 - lr * self.weight_decay
        self.m *= b1
        self.m += (1 - b1) * grad
        self.v *= b2
        self.v += (1 - b2) * grad * grad
        m_hat = self.m / (1 - b1 ** t)
        v_hat = self.v / (1 - b2 ** t)
        self.flat -= lr * m_hat / (np.sqrt(v_hat) + self.eps)
