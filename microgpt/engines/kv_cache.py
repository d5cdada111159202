"""KV caches with a length per row: what continuous batching asks of an engine.

A cache holds rows (slots from `add()`), each with the keys and values of its own positions
0 .. length - 1. `prefill(row, ids)` appends a row's tokens -- a whole prompt in one forward
pass in the numpy and torch engines (chunked when long) -- and returns the logits after the
last one; `prefill_rows(rows, ids)` does it for several rows with as many tokens each, in one
pass, -> logits [len(rows), vocab]; `decode(rows, tokens)` appends one token to each of several rows, each at its own
position, in one batched forward pass, and returns their logits [len(rows), vocab]; `free(row)`
gives its slot back (its memory too, once no row is left). The logits of a row do not depend on
which other rows share the call (up to the floating-point rounding of a batched matmul).

`TokenByToken` is the contract over the older `generator()` (one token per model call, every
row on its own): the python engine's path, where a Value graph per token is the point.
"""

CHUNK = 256  # a long prompt is prefilled this many tokens per forward pass (bounds the scores' memory)


class Slots:
    """Row ids 0, 1, ... handed out lowest first, so live rows stay packed at the front."""

    def __init__(self):
        self.length = {}  # row -> its number of cached positions

    def add(self):
        row = next(i for i in range(len(self.length) + 1) if i not in self.length)
        self.length[row] = 0
        return row

    def free(self, row):
        del self.length[row]

    @property
    def rows(self):
        return len(self.length)

    def prefill(self, row, ids):
        return self.prefill_rows([row], [ids])[0]


class ArrayCache(Slots):
    """The array engines' cache: per layer, keys and values in one array [capacity, n_head, block_size,
    head_dim], made when a row first needs room, doubled (the filled positions copied over) when full,
    dropped when the last row leaves (an idle server holds no cache memory). An engine gives
    `_zeros(capacity)`: one layer's array."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config
        self.k = self.v = None

    @property
    def capacity(self):
        return 0 if self.k is None else self.k[0].shape[0]

    def add(self):
        row = super().add()
        if row >= self.capacity:
            cap = max(1, 2 * self.capacity)  # (one row first: a lone request zeroes one row of memory, not four)
            k, v = ([self._zeros(cap) for _ in range(self.config.n_layer)] for _ in range(2))
            n = max(self.length.values())  # (only the filled positions are copied: the rest stays untouched)
            for old, grown in ((self.k or [], k), (self.v or [], v)):
                for a, b in zip(old, grown):
                    b[:len(a), :, :n] = a[:, :, :n]
            self.k, self.v = k, v
        return row

    def free(self, row):
        super().free(row)
        if not self.rows:
            self.k = self.v = None


class TokenByToken(Slots):
    def __init__(self, model):
        super().__init__()
        self.model, self.gens = model, {}
        self.nbytes = 0  # (the graphs' memory is the Values': not counted)

    def add(self):
        row = super().add()
        self.gens[row] = self.model.generator(1)
        return row

    def free(self, row):
        super().free(row)
        del self.gens[row]

    def _feed(self, row, token):
        logits = self.gens[row].next_logits([token], self.length[row])[0]
        self.length[row] += 1
        return logits

    def prefill_rows(self, rows, ids):
        out = []
        for row, row_ids in zip(rows, ids):
            for token in row_ids:
                logits = self._feed(row, token)
            out.append(logits)
        return out

    def decode(self, rows, tokens):
        return [self._feed(row, token) for row, token in zip(rows, tokens)]
