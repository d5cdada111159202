"""The python engine: the GPT on scalar Values, with a textbook or a fused graph."""

import gc

from microgpt import MicroGPTError
from microgpt.engines.python import textbook
from microgpt.engines.python.optim import Adam
from microgpt.engines.python.value import Value
from microgpt.init import param_shapes

GRAPHS = ("textbook", "fused")
NO_DROPOUT = ("the python engine trains without dropout (the seed has none): "
              "drop --dropout, or use --engine numpy or torch")


def _graph_module(name):
    if name == "textbook":
        return textbook
    if name == "fused":
        try:
            from microgpt.engines.python import fused
        except ImportError:
            raise MicroGPTError("the fused graph is not available in this version: pass --graph textbook") from None
        return fused
    raise MicroGPTError(f"unknown graph {name!r}: use textbook or fused")


class Model:
    name = "python"
    safetensors_dtype = "F64"

    def __init__(self, config, weights, options=None):
        options = options or {}
        if options.get("dtype") not in (None, "float64"):
            raise MicroGPTError(f"the python engine computes in Python floats (float64), not {options['dtype']}: "
                                f"drop --dtype, or use --engine numpy or torch")
        self.config = config
        self.graph_name = options.get("graph") or "fused"
        self.graph = _graph_module(self.graph_name)
        self.description = f"{self.graph_name} graph"
        self.state_dict = {name: [[Value(float(w)) for w in row] for row in weights[name]]
                           for name, _ in param_shapes(config)}
        self.params = [p for mat in self.state_dict.values() for row in mat for p in row]
        self.optimizer = None
        self.last_graph_size = None  # (nodes, edges) of the last training step's graph

    def _adam(self, tc=None):
        if self.optimizer is None:
            kw = dict(beta1=tc.beta1, beta2=tc.beta2, eps=tc.eps, weight_decay=tc.weight_decay) if tc else {}
            self.optimizer = Adam(self.params, **kw)
        return self.optimizer

    def get_weights(self):
        return {name: [[p.data for p in row] for row in mat] for name, mat in self.state_dict.items()}

    def _unflatten(self, flat):
        out, i = {}, 0
        for name, (n_out, n_in) in param_shapes(self.config):
            out[name] = [flat[i + r * n_in:i + (r + 1) * n_in] for r in range(n_out)]
            i += n_out * n_in
        return out

    def get_optimizer_state(self):
        opt = self._adam()
        return {"m": self._unflatten(opt.m), "v": self._unflatten(opt.v)}

    def set_optimizer_state(self, state):
        opt = self._adam()
        flat = lambda d: [float(x) for name, _ in param_shapes(self.config) for row in d[name] for x in row]
        opt.m, opt.v = flat(state["m"]), flat(state["v"])

    def _forward_backward(self, seqs, stats=False):
        """The mean loss over the target tokens of `seqs`; leaves d loss / d p in every p.grad."""
        if self.graph is textbook:  # the seed's algorithm: search the graph, then the chain rule
            loss = self.graph.loss(self.state_dict, self.config, seqs)
            if stats:
                self._graph_size(loss)
            loss.backward()
            return loss.data
        # The graph holds no reference cycles, so reference counting frees it; the cycle
        # collector would only walk the thousands of live nodes again and again: pause it.
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            # the fused graph records its nodes on a tape, already in topological order
            tape = []
            loss = self.graph.loss(self.state_dict, self.config, seqs, tape=tape)
            if stats:
                self._graph_size(loss)
            self.graph.backward(loss, tape)
            return loss.data
        finally:
            if gc_was_on:
                gc.enable()

    def train_step(self, seqs, lr, t, tc, stats=False):
        if tc.dropout:
            raise MicroGPTError(NO_DROPOUT)
        loss = self._forward_backward(seqs, stats)
        adam = self._adam(tc)
        adam.beta1, adam.beta2, adam.eps, adam.weight_decay = tc.beta1, tc.beta2, tc.eps, tc.weight_decay
        adam.step(lr, t)
        return loss

    def loss_and_grads(self, seqs):
        loss = self._forward_backward(seqs)
        grads = {name: [[p.grad for p in row] for row in mat] for name, mat in self.state_dict.items()}
        for p in self.params:
            p.grad = 0
        return loss, grads

    def _graph_size(self, loss):
        topo = loss.topo_order()
        self.last_graph_size = (len(topo), sum(len(v._children) for v in topo))

    def eval_loss(self, seqs):
        total, n = 0.0, 0
        for seq in seqs:
            for l in self.graph.sequence_losses(self.state_dict, self.config, seq):
                total += l.data
                n += 1
        return total, n

    def generator(self):
        return Generator(self)


class Generator:
    """Feeds one token at a time, keeping the keys and values of earlier positions (the KV cache)."""

    def __init__(self, model):
        self.model = model
        n = model.config.n_layer
        self.keys, self.values = [[] for _ in range(n)], [[] for _ in range(n)]

    def next_logits(self, token_id, pos_id):
        m = self.model
        logits = m.graph.gpt(m.state_dict, m.config, token_id, pos_id, self.keys, self.values)
        return [l.data for l in logits]
