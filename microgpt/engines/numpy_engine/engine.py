"""The numpy engine: the GPT as a small tensor autograd over numpy arrays, batched."""

import numpy as np

from microgpt import MicroGPTError
from microgpt.batching import pad_batch
from microgpt.engines.numpy_engine.model import gpt, loss
from microgpt.engines.numpy_engine.optim import Adam
from microgpt.engines.numpy_engine.tensor import Tensor, dropout
from microgpt.init import param_shapes

DTYPES = {"float64": "F64", "float32": "F32"}


class Model:
    name = "numpy"

    def __init__(self, config, weights, options=None):
        options = options or {}
        dtype = options.get("dtype") or "float64"
        if dtype not in DTYPES:
            raise MicroGPTError(f"the numpy engine computes in float64 or float32, not {dtype!r}: "
                                f"pass --dtype float64 or --dtype float32")
        self.config, self.dtype, self.safetensors_dtype = config, np.dtype(dtype), DTYPES[dtype]
        self.description = dtype
        # every parameter is a view into one flat array, so Adam updates them all in one go
        self.shapes = param_shapes(config)
        self.flat = np.zeros(sum(n_out * n_in for _, (n_out, n_in) in self.shapes), dtype=self.dtype)
        self.params = {}
        for name, view in self._views(self.flat).items():
            view[...] = np.asarray(weights[name], dtype=np.float64)
            self.params[name] = Tensor(view)
        self.grad = np.zeros_like(self.flat)   # every step's gradients, laid out as self.flat
        self.grad_views = self._views(self.grad)
        self.optimizer = Adam(self.flat)

    def _views(self, flat):
        """{name: the [out, in] view of that parameter inside a flat array}."""
        out, i = {}, 0
        for name, (n_out, n_in) in self.shapes:
            out[name] = flat[i:i + n_out * n_in].reshape(n_out, n_in)
            i += n_out * n_in
        return out

    def _float64(self, flat):
        """{name: a float64 copy of that parameter's entries in `flat`} (weights, moments, grads)."""
        return {name: view.astype(np.float64) for name, view in self._views(flat).items()}

    def _batch(self, seqs):
        inputs, targets, mask = pad_batch(seqs)
        return np.array(inputs), np.array(targets), np.array(mask, dtype=self.dtype)

    def get_weights(self):
        return self._float64(self.flat)

    def get_optimizer_state(self):
        return {"m": self._float64(self.optimizer.m), "v": self._float64(self.optimizer.v)}

    def set_optimizer_state(self, state):
        for k, a in (("m", self.optimizer.m), ("v", self.optimizer.v)):
            for name, view in self._views(a).items():
                view[...] = np.asarray(state[k][name], dtype=np.float64)

    def _forward_backward(self, seqs, drop=None):
        """The mean loss over the batch's target tokens; leaves every gradient in self.grad."""
        for p in self.params.values():
            p.grad = None
        L = loss(self.params, self.config, *self._batch(seqs), drop=drop)
        L.backward()
        for name, view in self.grad_views.items():
            g = self.params[name].grad
            view[...] = 0 if g is None else g
        return float(L.data)

    def train_step(self, seqs, lr, t, tc):
        drop = None
        if tc.dropout:  # masks drawn from (seed, step): a resumed run drops exactly the same units
            rng = np.random.default_rng((tc.seed, t))
            drop = lambda x: dropout(x, tc.dropout, rng)
        value = self._forward_backward(seqs, drop)
        adam = self.optimizer
        adam.beta1, adam.beta2, adam.eps, adam.weight_decay = tc.beta1, tc.beta2, tc.eps, tc.weight_decay
        adam.step(self.grad, lr, t)
        return value

    def loss_and_grads(self, seqs):
        value = self._forward_backward(seqs)
        return value, self._float64(self.grad)

    def eval_loss(self, seqs):
        inputs, targets, mask = self._batch(seqs)
        n = int(mask.sum())
        return float(loss(self.params, self.config, inputs, targets, mask).data) * n, n

    def attention_maps(self, ids):
        """Attention probabilities of one sequence `ids` (positions 0 ..): [n_layer, n_head, T, T],
        row i = how query position i spreads its attention over key positions 0 .. i."""
        record = []
        gpt(self.params, self.config, np.array([ids]), record=record)
        return np.stack([P[0] for P in record]).astype(np.float64)  # n_layer x [1, H, T, T] -> [L, H, T, T]

    def generator(self):
        return Generator(self)


class Generator:
    """Feeds one token at a time; each layer's keys and values of earlier positions stay cached."""

    def __init__(self, model):
        self.model = model
        self.cache = [{"k": None, "v": None} for _ in range(model.config.n_layer)]

    def next_logits(self, token_id, pos_id):
        m = self.model
        logits = gpt(m.params, m.config, np.array([[token_id]]), pos_id, self.cache)
        return logits.data[0, -1].tolist()
