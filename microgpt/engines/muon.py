"""Muon (MomentUm Orthogonalized by Newton-Schulz): what every engine's implementation computes.

Muon updates the 2-D matrices inside the layers (`layer{i}.attn_*`, `layer{i}.mlp_*`); the
embeddings `wte`, `wpe` and `lm_head` keep AdamW with the run's lr, betas, eps and decay, as
nanochat splits them. For a layer matrix W [out, in] with gradient G, at step t:

    B = mu * B + (1 - mu) * G          momentum: a running mean of gradients (B starts at 0)
    U = (1 - mu) * G + mu * B          Nesterov: look one step ahead
    O = NS5(U)                         ~ the orthogonal matrix nearest U (its singular values -> ~1)
    W *= 1 - lr_t * weight_decay       decoupled decay (0 by default)
    W -= lr_t * sqrt(max(1, out / in)) * O

NS5 is the quintic Newton-Schulz iteration of Keller Jordan's Muon (modded-nanogpt, nanochat):
X = U / (|U|_F + 1e-7), transposed to be wide; 5 times: A = X X^T, X = a X + (b A + c A A) X;
transposed back. lr_t = muon_lr * (the schedule's lr_t / lr): one schedule for both groups.
Unlike torch.optim.Muon and nanochat (bfloat16), every engine iterates in its own dtype, so
float64 engines agree to rounding.

Checkpoints keep the optimizer state in the Adam format {"m": {name: matrix}, "v": {...}} for
every parameter: for a Muon matrix, m is its momentum B and v is all zeros.
"""

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # a, b, c: the slope at 0 pushed high (Keller Jordan)
NS_STEPS = 5
NS_EPS = 1e-7


def is_muon_param(name):
    """True for the matrices Muon updates: every one inside a layer."""
    return name.startswith("layer")


def muon_scale(shape):
    """The update's shape-based scale sqrt(max(1, out / in)) for a matrix [out, in]."""
    n_out, n_in = shape
    return max(1.0, n_out / n_in) ** 0.5


def muon_lr(tc, lr):
    """Muon's learning rate when the schedule gives Adam `lr`: muon_lr scaled by the same schedule."""
    return tc.muon_lr * lr / tc.lr
