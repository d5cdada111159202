"""The numpy engine's KV cache: rows of their own lengths, prefilled in one pass, decoded together
(the contract: microgpt/engines/kv_cache.py).

Each layer keeps keys and values in arrays [capacity, n_head, block_size, head_dim] (as the torch
engine's: a row's heads lie as attention reads them, so q K^T and P V are stacks of plain matrix
products); row r's first length[r] positions are filled. The forward pass is model.gpt's
arithmetic on plain arrays (no gradient is ever asked of it: no Tensor graph), with each linear
layer one 2-D matrix product over all rows and tokens (q, k and v in one), except two things that
depend on each row's position: the positions (learned wpe rows or rotary angles) and the causal
mask (a query at position p sees the keys 0 .. p of its own row). The last layer, once its keys and
values are cached, goes on for each row's last token only: the logits after it are all a step asks
for (llama.cpp skips the same rows).
"""

import numpy as np

from microgpt.config import RMSNORM_EPS
from microgpt.engines.kv_cache import CHUNK, ArrayCache
from microgpt.engines.numpy_engine.modern import _rotate_half, _tables


class KVCache(ArrayCache):
    # (per layer, keys and values in arrays [capacity, n_head, block_size, head_dim])
    def _zeros(self, capacity):
        c = self.config
        return np.zeros((capacity, c.n_head, c.block_size, c.n_embd // c.n_head), self.model.dtype)

    @property
    def nbytes(self):
        return 0 if self.k is None else 2 * sum(a.nbytes for a in self.k)

    def add(self):
        if not self.rows:  # (the weights are read when the first row comes: a cache serves one set of them)
            self.w, self.wt = _weights(self.model.params, self.config), None
        return super().add()

    def free(self, row):
        super().free(row)
        if not self.rows:
            self.w = self.wt = None

    def _weights_for(self, R):
        """The weights as transposed views for one row, as contiguous copies for several: BLAS multiplies
        several rows by a contiguous [in, out] matrix up to 5x faster (4 rows x [128, 384]: 20 -> 4 us), one
        row no faster, and the copies cost ~1 ms a burst for the shakespeare-sized model."""
        if R == 1:
            return self.w
        if self.wt is None:
            t = np.ascontiguousarray
            self.wt = {**self.w, "layers": [tuple(map(t, ws)) for ws in self.w["layers"]],
                       "lm_head": t(self.w["lm_head"])}
        return self.wt

    def prefill_rows(self, rows, ids):
        ids = np.array(ids)  # [R, T]
        for i in range(0, ids.shape[1], CHUNK):
            logits = self._forward(np.array(rows), ids[:, i:i + CHUNK])
        return logits

    def decode(self, rows, tokens):
        return self._forward(np.array(rows), np.array(tokens)[:, None])

    def _forward(self, rows, ids):
        """Logits [R, V] (float64) after the last of ids [R, T], each row's T tokens appended to it."""
        c = self.config
        R, T = ids.shape
        w = self._weights_for(R)
        H, C = c.n_head, c.n_embd
        start = np.array([self.length[r] for r in rows])
        if (start + T > c.block_size).any():
            raise ValueError(f"a row of the KV cache would pass block_size {c.block_size}")
        pos = start[:, None] + np.arange(T)  # [R, T]
        Tk = int(pos.max()) + 1
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        packed = (np.diff(rows) == 1).all()  # rows lo, lo+1, ...: the cache is sliced, not copied
        x = w["wte"][ids]
        if c.pos == "learned":
            x = x + w["wpe"][pos]
        x = _rmsnorm(x)
        hidden = np.where(pos[:, :, None] < np.arange(Tk), -np.inf, 0).astype(x.dtype)[:, None]  # [R, 1, T, Tk]
        for li, (wqkv, wo, fc1, fc2) in enumerate(w["layers"]):
            qkv = _linear(_rmsnorm(x), wqkv)
            q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
            if c.pos == "rope":
                q, k = self._rope(q, pos), self._rope(k, pos)
            if c.qk_norm:
                q, k = (_rmsnorm(a.reshape(R, T, H, -1)).reshape(R, T, C) for a in (q, k))
            K, V = self.k[li], self.v[li]
            K[rows[:, None], :, pos] = k.reshape(R, T, H, -1)  # (the indexed axes first: [R, T, H, hd])
            V[rows[:, None], :, pos] = v.reshape(R, T, H, -1)
            keys, values = ((a[lo:hi, :, :Tk] if packed else a[rows, :, :Tk]) for a in (K, V))
            if li == c.n_layer - 1:  # (past the last layer's keys and values, only the logits after the
                q, x, hidden = q[:, -1:], x[:, -1:], hidden[:, :, -1:]  # last token are asked for)
            x = x + _linear(attention(q, keys, values, hidden), wo)
            h = np.maximum(_linear(_rmsnorm(x), fc1), 0)
            if c.mlp == "relu2":
                h = h * h
            x = x + _linear(h, fc2)
        for r in rows:
            self.length[r] += T
        x = x[:, -1]
        if c.final_norm:
            x = _rmsnorm(x)
        logits = _linear(x, w["lm_head"])
        if c.softcap:
            logits = c.softcap * np.tanh(logits / c.softcap)
        return logits.astype(np.float64)

    def _rope(self, x, pos):
        """modern.rope with a position per row and token: pos [R, T]."""
        c = self.config
        R, T, C = x.shape
        d = C // c.n_head
        cos, sin = _tables(d, c.block_size, c.rope_theta, x.dtype)
        cos, sin = cos[pos][:, :, None, :], sin[pos][:, :, None, :]  # [R, T, 1, d]
        xh = x.reshape(R, T, c.n_head, d)
        return (xh * cos + _rotate_half(xh) * sin).reshape(R, T, C)


def _weights(params, config):
    """The arrays a forward pass reads: per layer (wq, wk and wv stacked, wo, fc1, fc2) and lm_head as
    [in, out] (transposed views: _linear multiplies by them), and the embeddings as they are."""
    p = {name: t.data for name, t in params.items()}
    layers = [(np.concatenate([p[f"layer{i}.attn_w{n}"] for n in "qkv"]).T, p[f"layer{i}.attn_wo"].T,
               p[f"layer{i}.mlp_fc1"].T, p[f"layer{i}.mlp_fc2"].T) for i in range(config.n_layer)]
    return {**p, "layers": layers, "lm_head": p["lm_head"].T}


def _linear(x, wt):
    """tensor.linear on arrays, given the weight transposed (wt [in, out]), as one 2-D matmul (a stack of
    [1, C] rows would be one BLAS call each)."""
    return (x.reshape(-1, x.shape[-1]) @ wt).reshape(*x.shape[:-1], wt.shape[1])


def _rmsnorm(x):
    # (the mean as a sum over n: what .mean computes, without its Python wrapper -- a step calls this 9 times)
    return x * ((x * x).sum(axis=-1, keepdims=True) / x.shape[-1] + RMSNORM_EPS) ** -0.5


def attention(q, keys, values, hidden):
    """tensor.causal_attention's forward with a mask per row: q [R, T, C]; keys and values
    [R, n_head, Tk, head_dim]; hidden [R, 1, T, Tk], -inf where a key is not to be seen, else 0."""
    R, T, C = q.shape
    H, d = keys.shape[1], keys.shape[3]
    scale = (d ** 0.5) ** -1
    q = (q * scale).reshape(R, T, H, d).transpose(0, 2, 1, 3)  # (scaled before: [T, C] numbers, not [H, T, Tk])
    S = q @ keys.transpose(0, 1, 3, 2)  # [R, H, T, Tk]
    S += hidden
    S -= S.max(axis=-1, keepdims=True)
    P = np.exp(S, out=S)  # (in place: a prefill's scores are the biggest array of the step)
    P /= P.sum(axis=-1, keepdims=True)
    return (P @ values).transpose(0, 2, 1, 3).reshape(R, T, C)
