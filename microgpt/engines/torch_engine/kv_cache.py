"""The torch engine's KV cache: rows of their own lengths, prefilled in one pass, decoded together
(the contract: microgpt/engines/kv_cache.py).

Each layer keeps keys and values in tensors [capacity, n_head, block_size, head_dim] on the
model's device (attention reads a row's heads as they lie); row r's first length[r] positions
are filled. The forward pass is model.GPT's, with the same
parameters and pieces (rmsnorm, rotate), except what depends on each row's position: the
positions (wpe rows or rotary angles, gathered per token) and the attention mask (a query at
position p sees the keys 0 .. p of its own row) -- GPT.forward's is_causal assumes one shared
start, which a chunk after a cache does not have.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from microgpt.engines.kv_cache import CHUNK, ArrayCache
from microgpt.engines.torch_engine.model import rmsnorm, rotate


class KVCache(ArrayCache):
    # (per layer, keys and values in tensors [capacity, n_head, block_size, head_dim] on the model's device)
    def _zeros(self, capacity):
        m, c = self.model, self.config
        shape, dtype = (capacity, c.n_head, c.block_size, c.head_dim), m.autocast_dtype or m.dtype
        if m.device.type != "cpu":
            return torch.zeros(shape, dtype=dtype, device=m.device)
        # (on the CPU, numpy's zeros: memory the system hands out zeroed, page by page as it is first written;
        # torch.zeros writes every byte at once -- 32 rows x block_size 512 filled ~64 MB a burst, 40% of 30 steps)
        size = dtype.itemsize * math.prod(shape)
        return torch.from_numpy(np.zeros(size, np.uint8)).view(dtype).view(shape)

    @property
    def nbytes(self):
        return 0 if self.k is None else 2 * sum(a.numel() * a.element_size() for a in self.k)

    def prefill_rows(self, rows, ids):
        for i in range(0, len(ids[0]), CHUNK):
            logits = self._forward(rows, [row_ids[i:i + CHUNK] for row_ids in ids])
        return logits

    def decode(self, rows, tokens):
        return self._forward(rows, [[t] for t in tokens])

    @torch.inference_mode()
    def _forward(self, rows, ids):
        """Logits [R, V] (a float64 numpy array) after the last of ids (R lists of T tokens)."""
        m = self.model
        dev = m.device
        with m._autocast():
            logits = self._logits(list(rows), torch.tensor(ids, dtype=torch.long, device=dev))
        for r in rows:
            self.length[r] += len(ids[0])
        return logits.to("cpu", torch.float64).numpy()

    def _logits(self, rows, idx):
        net, c = self.model.module, self.config
        R, T = idx.shape
        start = [self.length[r] for r in rows]
        if max(start) + T > c.block_size:
            raise ValueError(f"a row of the KV cache would pass block_size {c.block_size}")
        Tk = max(start) + T
        pos = torch.tensor(start, device=idx.device)[:, None] + torch.arange(T, device=idx.device)  # [R, T]
        lo, hi = rows[0], rows[-1] + 1
        packed = rows == list(range(lo, hi))  # rows lo, lo+1, ...: the cache is sliced, not gathered
        rows = torch.tensor(rows, device=idx.device)
        x = F.embedding(idx, net.wte)
        rope = None
        if c.pos == "learned":
            x = x + net.wpe[pos]
        else:  # [R, 1, T, hd]: one angle per row and token, the same for every head
            rope = (net.rope_cos[pos][:, None], net.rope_sin[pos][:, None])
        x = rmsnorm(x)
        seen = (torch.arange(Tk, device=idx.device) <= pos[:, :, None])[:, None]  # [R, 1, T, Tk]
        H, C = c.n_head, c.n_embd
        heads = lambda t: t.view(R, t.size(1), H, C // H).transpose(1, 2)
        for li, block in enumerate(net.blocks()):
            h = rmsnorm(x)
            q, k, v = (F.linear(h, w) for w in (block.attn_wq, block.attn_wk, block.attn_wv))
            q, k = heads(q), heads(k)
            if rope is not None:
                q, k = rotate(q, *rope), rotate(k, *rope)
            if block.qk_norm:
                q, k = rmsnorm(q), rmsnorm(k)
            K, V = self.k[li], self.v[li]
            K[rows[:, None], :, pos] = k.transpose(1, 2).to(K.dtype)  # (the indexed axes first: [R, T, H, hd])
            V[rows[:, None], :, pos] = v.view(R, T, H, C // H).to(V.dtype)
            keys, values = ((a[lo:hi, :, :Tk] if packed else a[rows, :, :Tk]) for a in (K, V))
            if li == c.n_layer - 1:  # (past the last layer's keys and values, only the last token's logits
                q, x, seen = q[:, :, -1:], x[:, -1:], seen[:, :, -1:]  # are asked for: numpy's kv_cache.py)
            y = F.scaled_dot_product_attention(q, keys.to(q.dtype), values.to(q.dtype), attn_mask=seen)
            x = x + F.linear(y.transpose(1, 2).reshape(R, x.size(1), C), block.attn_wo)
            a = F.relu(F.linear(rmsnorm(x), block.mlp_fc1))
            if block.relu2:
                a = a.square()
            x = x + F.linear(a, block.mlp_fc2)
        x = x[:, -1]
        if c.final_norm:
            x = rmsnorm(x)
        logits = F.linear(x, net.lm_head)
        return c.softcap * torch.tanh(logits / c.softcap) if c.softcap else logits
