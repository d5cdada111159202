"""Adam with bias correction, over a flat list of Value parameters (the seed's loop)."""


class Adam:
    def __init__(self, params):
        self.params = params
        self.m = [0.0] * len(params)  # first moment: running mean of gradients
        self.v = [0.0] * len(params)  # second moment: running mean of squared gradients

    def step(self, lr, t, tc):
        """One update with learning rate lr at step t (1-based, for bias correction), with the
        betas, eps and weight decay of the TrainConfig tc; zeroes the gradients."""
        b1, b2, eps = tc.beta1, tc.beta2, tc.eps
        ob1, ob2 = 1 - b1, 1 - b2  # the seed's (1 - b1), (1 - b2), computed once
        m, v = self.m, self.v
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        if tc.weight_decay:  # AdamW: shrink every weight toward 0, apart from the gradient
            decay = 1 - lr * tc.weight_decay
            for p in self.params:
                p.data *= decay
        # the seed's arithmetic, operation for operation; only the bookkeeping is hoisted out
        for i, (p, mi, vi) in enumerate(zip(self.params, m, v)):
            g = p.grad
            mi = b1 * mi + ob1 * g
            vi = b2 * vi + ob2 * g ** 2
            m[i], v[i] = mi, vi
            p.data -= lr * (mi / c1) / ((vi / c2) ** 0.5 + eps)
            p.grad = 0
