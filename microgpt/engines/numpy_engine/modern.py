"""The modern parts' Tensor operations, each forward with its backward beside it:
rotary positions, per-head RMS norm of q and k, ReLU^2 and the tanh soft cap on the logits."""

import functools

import numpy as np

from microgpt.engines.numpy_engine.tensor import Tensor, relu, rmsnorm
from microgpt.engines.rope import rope_tables


def reshape(x, shape):
    """The same numbers in another shape; the gradient is reshaped back."""
    def backward(g):
        x._add_grad(g.reshape(x.shape))
    return Tensor(x.data.reshape(shape), (x,), backward)


def _rotate_half(a):
    """[x2, -x1] for halves x1, x2 of the last axis (a quarter turn of every pair (x1[j], x2[j]))."""
    x1, x2 = np.split(a, 2, axis=-1)
    return np.concatenate([x2, -x1], axis=-1)


def _rotate_half_t(a):
    """The transpose of _rotate_half: [-x2, x1] (the quarter turn back)."""
    x1, x2 = np.split(a, 2, axis=-1)
    return np.concatenate([-x2, x1], axis=-1)


@functools.lru_cache(maxsize=16)
def _tables(head_dim, block_size, theta, dtype):
    cos, sin = rope_tables(head_dim, block_size, theta)
    return np.array(cos, dtype=dtype), np.array(sin, dtype=dtype)  # [block_size, head_dim] each


def rope(x, n_head, pos0, config):
    """Rotary positions: x [B, T, C] at positions pos0 .. pos0 + T - 1, each head's d = C / n_head
    dimensions turned pair by pair (microgpt/engines/rope.py): y = x cos + rotate_half(x) sin.

    A rotation's transpose turns back: dx = g cos + rotate_half^T(g sin)."""
    B, T, C = x.shape
    d = C // n_head
    cos, sin = _tables(d, config.block_size, config.rope_theta, x.data.dtype)
    cos, sin = cos[pos0:pos0 + T, None, :], sin[pos0:pos0 + T, None, :]  # [T, 1, d]: the same for every head
    xh = x.data.reshape(B, T, n_head, d)

    def backward(g):
        gh = g.reshape(B, T, n_head, d)
        x._add_grad((gh * cos + _rotate_half_t(gh * sin)).reshape(B, T, C))
    return Tensor((xh * cos + _rotate_half(xh) * sin).reshape(B, T, C), (x,), backward)


def head_rmsnorm(x, n_head):
    """rmsnorm of each head's slice of x [B, T, C] (QK-norm): the gainless rmsnorm over d = C / n_head."""
    B, T, C = x.shape
    return reshape(rmsnorm(reshape(x, (B, T, n_head, C // n_head))), (B, T, C))


def square(x):
    def backward(g):
        x._add_grad(2 * x.data * g)
    return Tensor(x.data * x.data, (x,), backward)


def relu2(x):
    """ReLU^2 (the speedrun's and nanochat's MLP activation): relu(x)^2."""
    return square(relu(x))


def softcap(x, cap):
    """cap * tanh(x / cap): the logits squashed smoothly into (-cap, cap). dy/dx = 1 - tanh^2."""
    t = np.tanh(x.data / cap)

    def backward(g):
        x._add_grad(g * (1 - t * t))
    return Tensor(cap * t, (x,), backward)
