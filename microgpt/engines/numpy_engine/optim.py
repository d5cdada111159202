"""Adam with bias correction over one flat array that holds every parameter.

Each parameter's array is a view into `flat`, so a whole step is a handful of array operations
however many parameters there are: the seed's per-parameter loop, vectorised.
"""

import numpy as np


class Adam:
    def __init__(self, flat):
        self.flat = flat                 # every parameter, updated in place
        self.m = np.zeros_like(flat)     # first moment: running mean of gradients
        self.v = np.zeros_like(flat)     # second moment: running mean of squared gradients

    def step(self, grad, lr, t, tc):
        """One update with learning rate lr at step t (1-based, for bias correction), with the
        betas, eps and weight decay of the TrainConfig tc."""
        b1, b2 = tc.beta1, tc.beta2
        if tc.weight_decay:  # AdamW: shrink every weight toward 0, apart from the gradient
            self.flat *= 1 - lr * tc.weight_decay
        self.m *= b1
        self.m += (1 - b1) * grad
        self.v *= b2
        self.v += (1 - b2) * grad * grad
        m_hat = self.m / (1 - b1 ** t)
        v_hat = self.v / (1 - b2 ** t)
        self.flat -= lr * m_hat / (np.sqrt(v_hat) + tc.eps)
