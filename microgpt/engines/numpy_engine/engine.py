"""The numpy engine: the GPT as a small tensor autograd over numpy arrays, batched."""

import numpy as np

from microgpt.batching import pad_batch
from microgpt.engines import base, dtype_name
from microgpt.engines.numpy_engine.kv_cache import KVCache
from microgpt.engines.numpy_engine.memory import keep_freed_memory
from microgpt.engines.numpy_engine.model import gpt, loss
from microgpt.engines.numpy_engine.muon import MuonAdamW
from microgpt.engines.numpy_engine.optim import Adam
from microgpt.engines.numpy_engine.tensor import Tensor, dropout, log_softmax
from microgpt.engines.numpy_engine.threads import limit_blas_threads
from microgpt.params import num_params, param_slices

DTYPES = {"float64": "F64", "float32": "F32"}


class Model(base.Model):
    def __init__(self, config, weights, options):
        dtype = dtype_name("numpy", options.dtype)
        self.config, self.dtype, self.safetensors_dtype = config, np.dtype(dtype), DTYPES[dtype]
        self.description = dtype
        # every parameter is a view into one flat array, so Adam updates them all in one go
        self.flat = np.zeros(num_params(config), dtype=self.dtype)
        self.params = {}
        for name, view in self._views(self.flat).items():
            view[...] = np.asarray(weights[name], dtype=np.float64)
            self.params[name] = Tensor(view)
        self.grad = np.zeros_like(self.flat)   # every step's gradients, laid out as self.flat
        self.grad_views = self._views(self.grad)
        self.optimizer = Adam(self.flat)
        self.muon = None  # MuonAdamW over the same arrays, made when a step asks for --optimizer muon
        limit_blas_threads(options.threads)
        keep_freed_memory()  # (each step frees and allocates the same large arrays: reuse, do not unmap)

    def _views(self, flat):
        """{name: the [out, in] view of that parameter inside a flat array}."""
        return {name: flat[start:end].reshape(shape) for name, shape, start, end in param_slices(self.config)}

    def _float64(self, flat):
        """{name: a float64 copy of that parameter's entries in `flat`} (weights, moments, grads)."""
        return {name: view.astype(np.float64) for name, view in self._views(flat).items()}

    def _batch(self, seqs, weights=None):
        inputs, targets, w = pad_batch(seqs, weights)
        w = np.array(w, dtype=self.dtype)
        if weights is None:
            w /= w.sum()  # the mean over the real target tokens
        return np.array(inputs), np.array(targets), w

    def get_weights(self):
        return self._float64(self.flat)

    def get_optimizer_state(self):
        return {"m": self._float64(self.optimizer.m), "v": self._float64(self.optimizer.v)}

    def set_optimizer_state(self, state):
        for k, a in (("m", self.optimizer.m), ("v", self.optimizer.v)):
            for name, view in self._views(a).items():
                view[...] = np.asarray(state[k][name], dtype=np.float64)

    def _forward_backward(self, seqs, weights=None, drop=None):
        """The loss of the batch; leaves every gradient in self.grad."""
        for p in self.params.values():
            p.grad = None
        L = loss(self.params, self.config, *self._batch(seqs, weights), drop=drop)
        L.backward()
        for name, view in self.grad_views.items():
            g = self.params[name].grad
            view[...] = 0 if g is None else g
        return float(L.data)

    def train_step(self, seqs, lr, t, tc, weights=None):
        drop = None
        if tc.dropout:  # masks drawn from (seed, step): a resumed run drops exactly the same units
            rng = np.random.default_rng((tc.seed, t))
            drop = lambda x: dropout(x, tc.dropout, rng)
        value = self._forward_backward(seqs, weights, drop)
        if tc.optimizer == "muon":
            self.muon = self.muon or MuonAdamW(self.optimizer, self.config)
            self.muon.step(self.grad, lr, t, tc)
        else:
            self.optimizer.step(self.grad, lr, t, tc)
        return value

    def loss_and_grads(self, seqs, weights=None):
        value = self._forward_backward(seqs, weights)
        return value, self._float64(self.grad)

    def token_losses(self, seqs):
        inputs, targets, _ = self._batch(seqs)
        logp = log_softmax(gpt(self.params, self.config, inputs).data)
        nll = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]  # [B, T]
        return [row[:len(s) - 1].astype(np.float64).tolist() for row, s in zip(nll, seqs)]

    def attention_maps(self, ids):
        """Attention probabilities of one sequence `ids` (positions 0 ..): [n_layer, n_head, T, T],
        row i = how query position i spreads its attention over key positions 0 .. i."""
        record = []
        gpt(self.params, self.config, np.array([ids]), record=record)
        return np.stack([P[0] for P in record]).astype(np.float64)  # n_layer x [1, H, T, T] -> [L, H, T, T]

    def generator(self, batch_size=1):
        return Generator(self, batch_size)

    def kv_cache(self):
        return KVCache(self)


class Generator:
    """Feeds one token per row at a time; each layer's keys and values of earlier positions stay cached."""

    def __init__(self, model, batch_size):
        self.model = model
        self.cache = [{"k": None, "v": None} for _ in range(model.config.n_layer)]

    def next_logits(self, tokens, pos):
        m = self.model
        logits = gpt(m.params, m.config, np.array(tokens)[:, None], pos, self.cache)  # [B, 1, V]
        return logits.data[:, -1].astype(np.float64).tolist()
