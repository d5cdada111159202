"""The python engine: the GPT on scalar Values, with a textbook or a fused graph."""

import contextlib
import gc

from microgpt.engines import base, dtype_name
from microgpt.engines.python import fused, textbook
from microgpt.engines.python.optim import Adam
from microgpt.errors import MicroGPTError
from microgpt.params import param_slices
from microgpt.reference import Value

GRAPHS = {"textbook": textbook, "fused": fused}  # the same API: loss, backward, token_losses, gpt
NO_DROPOUT = ("the python engine trains without dropout (the seed has none): "
              "drop --dropout, or use --engine numpy or torch")


class Model(base.Model):
    def __init__(self, config, weights, options):
        dtype_name("python", options.dtype)  # (Python floats: float64, the only one it has)
        if not config.is_seed:
            raise MicroGPTError("the python engine computes the seed's architecture only (no --pos rope, --qk-norm, "
                                "--mlp relu2, --final-norm, --softcap, --arch nanochat): use --engine numpy or torch")
        if options.graph not in GRAPHS:
            raise MicroGPTError(f"unknown graph {options.graph!r}: use textbook or fused")
        self.config, self.graph, self.stats = config, GRAPHS[options.graph], options.stats
        self.description = f"{options.graph} graph"
        self.state_dict = {name: [[Value(float(w)) for w in row] for row in weights[name]]
                           for name, _, _, _ in param_slices(config)}
        self.params = [p for mat in self.state_dict.values() for row in mat for p in row]
        self.optimizer = Adam(self.params)
        self.graph_size = None  # (nodes, edges) of the last training step's graph, with stats on

    def get_weights(self):
        return {name: [[p.data for p in row] for row in mat] for name, mat in self.state_dict.items()}

    def _unflatten(self, flat):
        return {name: [flat[i:i + n_in] for i in range(start, end, n_in)]
                for name, (_, n_in), start, end in param_slices(self.config)}

    def get_optimizer_state(self):
        return {"m": self._unflatten(self.optimizer.m), "v": self._unflatten(self.optimizer.v)}

    def set_optimizer_state(self, state):
        flat = lambda d: [float(x) for name, _, _, _ in param_slices(self.config) for row in d[name] for x in row]
        self.optimizer.m, self.optimizer.v = flat(state["m"]), flat(state["v"])

    def _forward_backward(self, seqs, weights=None):
        """The loss of `seqs`; leaves d loss / d p in every p.grad."""
        with no_cycle_collector():
            loss = self.graph.loss(self.state_dict, self.config, seqs, weights)
            if self.stats:
                topo = loss.topo_order()
                self.graph_size = (len(topo), sum(len(v._children) for v in topo))
            self.graph.backward(loss)
            value, loss = loss.data, None  # free the graph now, the collector still paused
        return value

    def check_training(self, tc):
        if tc.dropout:
            raise MicroGPTError(NO_DROPOUT)
        if tc.optimizer != "adam":
            raise MicroGPTError(f"the python engine trains with Adam only, not --optimizer {tc.optimizer}: "
                                f"use --engine numpy or torch")

    def train_step(self, seqs, lr, t, tc, weights=None):
        self.check_training(tc)
        loss = self._forward_backward(seqs, weights)
        self.optimizer.step(lr, t, tc)
        return loss

    def loss_and_grads(self, seqs, weights=None):
        loss = self._forward_backward(seqs, weights)
        grads = {name: [[p.grad for p in row] for row in mat] for name, mat in self.state_dict.items()}
        for p in self.params:
            p.grad = 0
        return loss, grads

    def step_info(self):
        if self.graph_size is None:
            return {}
        return {"graph_nodes": self.graph_size[0], "graph_edges": self.graph_size[1]}

    def token_losses(self, seqs):
        return [[l.data for l in self.graph.token_losses(self.state_dict, self.config, seq)] for seq in seqs]

    def generator(self, batch_size=1):
        return Generator(self, batch_size)


class Generator:
    """Feeds one token per row at a time; each row keeps its earlier keys and values (KV cache)."""

    def __init__(self, model, batch_size):
        self.model = model
        n = model.config.n_layer
        self.caches = [([[] for _ in range(n)], [[] for _ in range(n)]) for _ in range(batch_size)]

    def next_logits(self, tokens, pos):
        m = self.model
        with no_cycle_collector():  # (the rows' caches are many live nodes: see no_cycle_collector)
            return [[l.data for l in m.graph.gpt(m.state_dict, m.config, tok, pos, keys, values)]
                    for tok, (keys, values) in zip(tokens, self.caches)]


@contextlib.contextmanager
def no_cycle_collector():
    """Value graphs hold no reference cycles, so reference counting frees them; the cycle
    collector would only walk the thousands of live nodes again and again: pause it."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
