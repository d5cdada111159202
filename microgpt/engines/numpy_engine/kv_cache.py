"""The numpy engine's KV cache: rows of their own lengths, prefilled in one pass, decoded together
(the contract: microgpt/engines/kv_cache.py).

Each layer keeps keys and values in arrays [capacity, block_size, C]; row r's first length[r]
positions are filled. The forward pass is model.gpt's, built from the same Tensor operations
(no gradient is ever asked of them), except two things that depend on each row's position:
the positions (learned wpe rows or rotary angles) and the causal mask (a query at position p
sees the keys 0 .. p of its own row).
"""

import numpy as np

from microgpt.engines.kv_cache import CHUNK, ArrayCache
from microgpt.engines.numpy_engine.modern import _rotate_half, _tables, head_rmsnorm, relu2, softcap
from microgpt.engines.numpy_engine.tensor import Tensor, embedding, linear, relu, rmsnorm


class KVCache(ArrayCache):
    # (per layer, keys and values in arrays [capacity, block_size, C])
    def _zeros(self, capacity):
        c = self.config
        return np.zeros((capacity, c.block_size, c.n_embd), self.model.dtype)

    @property
    def nbytes(self):
        return 0 if self.k is None else 2 * sum(a.nbytes for a in self.k)

    def prefill_rows(self, rows, ids):
        ids = np.array(ids)  # [R, T]
        for i in range(0, ids.shape[1], CHUNK):
            logits = self._forward(np.array(rows), ids[:, i:i + CHUNK])
        return logits

    def decode(self, rows, tokens):
        return self._forward(np.array(rows), np.array(tokens)[:, None])

    def _forward(self, rows, ids):
        """Logits [R, V] (float64) after the last of ids [R, T], each row's T tokens appended to it."""
        m, c = self.model, self.config
        R, T = ids.shape
        start = np.array([self.length[r] for r in rows])
        if (start + T > c.block_size).any():
            raise ValueError(f"a row of the KV cache would pass block_size {c.block_size}")
        pos = start[:, None] + np.arange(T)  # [R, T]
        Tk = int(pos.max()) + 1
        packed = (np.diff(rows) == 1).all()  # rows lo, lo+1, ...: the cache is sliced, not copied
        p = m.params
        x = embedding(p["wte"], ids)
        if c.pos == "learned":
            x = x + embedding(p["wpe"], pos)
        x = rmsnorm(x)
        hidden = pos[:, :, None] < np.arange(Tk)  # [R, T, Tk]: keys after the query's own position
        for li in range(c.n_layer):
            name = f"layer{li}."
            x_residual = x
            x = rmsnorm(x)
            q, k, v = (linear(x, p[name + w]) for w in ("attn_wq", "attn_wk", "attn_wv"))
            if c.pos == "rope":
                q, k = self._rope(q, pos), self._rope(k, pos)
            if c.qk_norm:
                q, k = head_rmsnorm(q, c.n_head), head_rmsnorm(k, c.n_head)
            self.k[li][rows[:, None], pos] = k.data
            self.v[li][rows[:, None], pos] = v.data
            K, V = self.k[li], self.v[li]
            keys, values = ((a[rows[0]:rows[-1] + 1, :Tk] if packed else a[rows, :Tk]) for a in (K, V))
            x = Tensor(attention(q.data, keys, values, c.n_head, hidden))
            x = linear(x, p[name + "attn_wo"]) + x_residual
            x_residual = x
            x = rmsnorm(x)
            x = linear(x, p[name + "mlp_fc1"])
            x = relu2(x) if c.mlp == "relu2" else relu(x)
            x = linear(x, p[name + "mlp_fc2"]) + x_residual
        for r in rows:
            self.length[r] += T
        x = Tensor(x.data[:, -1])
        if c.final_norm:
            x = rmsnorm(x)
        logits = linear(x, p["lm_head"])
        if c.softcap:
            logits = softcap(logits, c.softcap)
        return logits.data.astype(np.float64)

    def _rope(self, x, pos):
        """modern.rope with a position per row and token: pos [R, T]."""
        c = self.config
        R, T, C = x.shape
        d = C // c.n_head
        cos, sin = _tables(d, c.block_size, c.rope_theta, x.data.dtype)
        cos, sin = cos[pos][:, :, None, :], sin[pos][:, :, None, :]  # [R, T, 1, d]
        xh = x.data.reshape(R, T, c.n_head, d)
        return Tensor((xh * cos + _rotate_half(xh) * sin).reshape(R, T, C))


def attention(q, keys, values, n_head, hidden):
    """tensor.causal_attention's forward with a mask per row: q [R, T, C], keys and values
    [R, Tk, C], hidden [R, T, Tk] True where a key is not to be seen."""
    R, T, C = q.shape
    d = C // n_head
    scale = (d ** 0.5) ** -1
    heads = lambda a: a.reshape(R, a.shape[1], n_head, d).transpose(0, 2, 1, 3)
    S = (heads(q) @ heads(keys).transpose(0, 1, 3, 2)) * scale  # [R, H, T, Tk]
    S = np.where(hidden[:, None], -np.inf, S)
    S -= S.max(axis=-1, keepdims=True)
    P = np.exp(S)
    P /= P.sum(axis=-1, keepdims=True)
    return (P @ heads(values)).transpose(0, 2, 1, 3).reshape(R, T, C)
