"""Adam with bias correction, over a flat list of Value parameters (the seed's loop)."""


class Adam:
    def __init__(self, params, beta1=0.85, beta2=0.99, eps=1e-8):
        self.params = params
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [0.0] * len(params)  # first moment: running mean of gradients
        self.v = [0.0] * len(params)  # second moment: running mean of squared gradients

    def step(self, lr, t):
        """One update with learning rate lr at step t (1-based, for bias correction); zeroes grads."""
        b1, b2, eps = self.beta1, self.beta2, self.eps
        m, v = self.m, self.v
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        for i, p in enumerate(self.params):
            g = p.grad
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g ** 2
            m_hat = m[i] / c1
            v_hat = v[i] / c2
            p.data -= lr * m_hat / (v_hat ** 0.5 + eps)
            p.grad = 0
