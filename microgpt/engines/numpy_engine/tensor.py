"""Tensor autograd: the scalar `Value` one level up, one node per array operation.

A Tensor wraps a numpy array and remembers the Tensors it was computed from and a `_backward`
function that, given d(loss)/d(this tensor), adds the chain rule's share into each child's
`.grad`. Each operation below is a forward computation with its backward rule right beside it,
as `Value.__mul__` keeps its local derivative beside the product. A step is a few dozen nodes
instead of thousands of scalar ones: the Python overhead is paid per array, not per number.
"""

import numpy as np

from microgpt.config import RMSNORM_EPS
from microgpt.reference import Value


class Tensor:
    __slots__ = ("data", "grad", "_children", "_backward")

    def __init__(self, data, children=(), backward=None):
        self.data = data            # a numpy array, computed in the forward pass
        self.grad = None            # d(loss)/d(data), same shape; None until something flows in
        self._children = children   # the Tensors this one was computed from
        self._backward = backward   # grad of this node -> adds into each child's .grad

    @property
    def shape(self):
        return self.data.shape

    def _add_grad(self, g):
        self.grad = g if self.grad is None else self.grad + g

    # every node this one depends on, children before parents: the scalar Value's own graph
    # search, which needs nothing but `_children`
    topo_order = Value.topo_order

    def backward(self):
        """The chain rule from this (scalar) tensor back to every tensor it depends on."""
        topo = self.topo_order()
        self.grad = np.ones_like(self.data)
        for v in reversed(topo):
            if v._backward is not None and v.grad is not None:
                v._backward(v.grad)

    def __add__(self, other):
        """Elementwise sum; `other` may broadcast over leading axes (a position embedding [T, C]
        added to every sequence of a batch [B, T, C]), so its gradient is summed over them."""
        def backward(g):
            self._add_grad(_unbroadcast(g, self.shape))
            other._add_grad(_unbroadcast(g, other.shape))
        return Tensor(self.data + other.data, (self, other), backward)


def _unbroadcast(g, shape):
    """Sum a gradient over the leading axes that broadcasting added."""
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    return g


def embedding(table, ids):
    """Rows of `table` [N, C] picked by the integer array `ids` -> [*ids.shape, C]."""
    def backward(g):
        gt = np.zeros_like(table.data)
        np.add.at(gt, ids, g)  # a row picked twice gets both gradients
        table._add_grad(gt)
    return Tensor(table.data[ids], (table,), backward)


def linear(x, w):
    """x [..., in] @ w.T with w [out, in] (the seed's linear(x, W)[i] = sum_j W[i][j] x[j])."""
    def backward(g):
        x._add_grad(g @ w.data)
        w._add_grad(g.reshape(-1, g.shape[-1]).T @ x.data.reshape(-1, x.shape[-1]))
    return Tensor(x.data @ w.data.T, (x, w), backward)


def rmsnorm(x, eps=RMSNORM_EPS):
    """y = x * s with s = (mean(x^2) + eps)^-0.5 over the last axis (no gain, as the seed).

    dy/dx: dx = s * g - x * s^3 * mean(g * x), the second term because s depends on every x.
    """
    s = (np.mean(x.data * x.data, axis=-1, keepdims=True) + eps) ** -0.5

    def backward(g):
        x._add_grad(s * g - x.data * (s ** 3 * np.mean(g * x.data, axis=-1, keepdims=True)))
    return Tensor(x.data * s, (x,), backward)


def relu(x):
    def backward(g):
        x._add_grad(g * (x.data > 0))
    return Tensor(np.maximum(x.data, 0), (x,), backward)


def dropout(x, p, rng):
    """Zero each element with probability p and scale the survivors by 1 / (1 - p), so the
    expected value is unchanged and evaluation simply skips this op. `rng` draws the mask."""
    keep = (rng.random(x.shape) >= p).astype(x.data.dtype) / (1 - p)

    def backward(g):
        x._add_grad(g * keep)
    return Tensor(x.data * keep, (x,), backward)


def causal_attention(q, k, v, n_head, record=None):
    """Multi-head causal self-attention. q [B, Tq, C], k and v [B, Tk, C] -> [B, Tq, C].

    The Tq queries are the last Tq of the Tk positions (Tq = Tk in training; Tq = 1 when
    sampling with a KV cache), and each attends to its own position and every earlier one.
    Per head (d = C / n_head): S = q k^T / sqrt(d), P = softmax(S) over the keys, out = P v.
    `record` (pictures only): a list that P [B, n_head, Tq, Tk] is appended to.
    """
    B, Tq, C = q.shape
    Tk = k.shape[1]
    d = C // n_head
    scale = (d ** 0.5) ** -1

    def heads(a):  # [B, T, C] -> [B, n_head, T, d]
        return a.reshape(B, a.shape[1], n_head, d).transpose(0, 2, 1, 3)

    qh, kh, vh = heads(q.data), heads(k.data), heads(v.data)
    S = (qh @ kh.transpose(0, 1, 3, 2)) * scale
    future = np.triu(np.ones((Tq, Tk), dtype=bool), k=Tk - Tq + 1)  # key position > query position
    S[..., future] = -np.inf
    S -= S.max(axis=-1, keepdims=True)
    P = np.exp(S)
    P /= P.sum(axis=-1, keepdims=True)
    if record is not None:
        record.append(P)
    out = (P @ vh).transpose(0, 2, 1, 3).reshape(B, Tq, C)

    def backward(g):
        gh = heads(g)                                  # [B, H, Tq, d]
        gP = gh @ vh.transpose(0, 1, 3, 2)             # d out / d P
        gS = P * (gP - (gP * P).sum(axis=-1, keepdims=True)) * scale   # softmax's Jacobian
        merge = lambda a: a.transpose(0, 2, 1, 3).reshape(B, a.shape[2], C)
        q._add_grad(merge(gS @ kh))
        k._add_grad(merge(gS.transpose(0, 1, 3, 2) @ qh))
        v._add_grad(merge(P.transpose(0, 1, 3, 2) @ gh))
    return Tensor(out, (q, k, v), backward)


def log_softmax(logits):
    """log softmax over the last axis of an array, the max subtracted first (no overflow)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def cross_entropy(logits, targets, weights):
    """sum over positions of weights * -log softmax(logits)[target]: the mean over real targets
    when weights = mask / (number of real targets), padding having weight 0.

    logits [B, T, V], targets [B, T] ints, weights [B, T]. Softmax and log fused in one node:
    d loss / d logits = (softmax - onehot(target)) * weights.
    """
    logp = log_softmax(logits.data)
    picked = np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    loss = -(picked * weights).sum()

    def backward(g):
        grad = np.exp(logp)
        np.put_along_axis(grad, targets[..., None], np.take_along_axis(grad, targets[..., None], -1) - 1, -1)
        logits._add_grad(grad * (weights * g)[..., None])
    return Tensor(np.asarray(loss, dtype=logits.data.dtype), (logits,), backward)
