"""Choosing the next token from logits: greedy, temperature, top-k, top-p, log-probabilities.

Temperature 0 means greedy decoding (the likeliest token, no random draw) in every command.
Otherwise the arithmetic copies the seed's (l / T computed as l * T**-1, then its softmax), so
the same logits draw the same samples from the same random stream. top_p (nucleus) keeps the
smallest set of the likeliest tokens whose probability reaches top_p, after temperature and
top-k; the log-probability of a drawn token and its likeliest alternatives are the model's own
(temperature 1), as OpenAI reports them.

Two forms of one policy: `pick` on one row of plain floats (the python engine: exactly the
seed's float operations and its `rng.choices` draw), and `choose_rows` on a [rows, vocab] numpy
array, every row with its own settings and random stream, each draw one `rng.random()`
bisected into the cumulative probabilities -- what `rng.choices` does with the same numbers.
"""

import heapq
import math

from microgpt.errors import MicroGPTError
from microgpt.softmax import softmax

NOT_NUMBERS = ("the model's next-token probabilities are not numbers (NaN): its weights have diverged; train it "
               "again, with a lower --lr")


def probs_from_logits(logits, temperature=1.0, top_k=0):
    scaled = [l * temperature ** -1 for l in logits]
    if top_k and top_k < len(scaled):
        kth = sorted(scaled, reverse=True)[top_k - 1]
        scaled = [s if s >= kth else -math.inf for s in scaled]
    return softmax(scaled)


def pick(logits, rng, temperature, top_k=0):
    """The next token: the argmax at temperature 0, else a draw from softmax(logits / T) (top-k)."""
    if temperature == 0:
        return max(range(len(logits)), key=logits.__getitem__)
    probs = probs_from_logits(logits, temperature, top_k)
    if not math.isfinite(sum(probs)):  # NaN logits: the weights overflow somewhere
        raise MicroGPTError(NOT_NUMBERS)
    return rng.choices(range(len(probs)), weights=probs)[0]


def log_softmax(logits):
    m = max(logits)
    lse = m + math.log(sum(math.exp(l - m) for l in logits))
    return [l - lse for l in logits]


def nucleus(logits, temperature, top_k, top_p):
    """The logits with every token outside the top_p nucleus set to -inf."""
    probs = probs_from_logits(logits, temperature, top_k)
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    keep, total = set(), 0.0
    for i in order:
        keep.add(i)
        total += probs[i]
        if total >= top_p:
            break
    return [l if i in keep else -math.inf for i, l in enumerate(logits)]


def choose(logits, s):
    """One row of plain floats, settings s (a Row): -> (token, logprob or None, [(token, logprob)])."""
    candidates = logits if s.top_p >= 1 or s.temperature == 0 else nucleus(logits, s.temperature, s.top_k, s.top_p)
    token = pick(candidates, s.rng, s.temperature, s.top_k)
    if not s.logprobs:
        return token, None, []
    logp = log_softmax(logits)
    top = heapq.nlargest(s.top_logprobs, range(len(logp)), key=logp.__getitem__) if s.top_logprobs else []
    return token, logp[token], [(i, logp[i]) for i in top]


def choose_rows(logits, settings):
    """choose() for every row of a [R, V] numpy array at once; settings: one Row per row."""
    import numpy as np
    R, V = logits.shape
    T = np.array([s.temperature for s in settings], dtype=np.float64)
    drawn = T > 0
    tokens = logits.argmax(axis=-1)
    if drawn.any():
        scaled = logits[drawn] * (T[drawn] ** -1)[:, None]
        top_k = np.array([s.top_k if 0 < s.top_k < V else V for s, d in zip(settings, drawn) if d])
        top_p = np.array([s.top_p for s, d in zip(settings, drawn) if d])
        for k in np.unique(top_k[top_k < V]):  # top-k: each row's k-th largest, by a partition (no sort)
            at = top_k == k
            kth = -np.partition(-scaled[at], k - 1, axis=-1)[:, k - 1]
            scaled[at] = np.where(scaled[at] >= kth[:, None], scaled[at], -np.inf)
        probs = _softmax(scaled)
        nucleus = top_p < 1
        if nucleus.any():  # the likeliest tokens until their probability reaches top_p (only these rows sorted)
            order = np.argsort(-scaled[nucleus], axis=-1, kind="stable")  # likeliest first, ties by token id
            cum = np.cumsum(np.take_along_axis(probs[nucleus], order, axis=-1), axis=-1)
            n_keep = np.minimum((cum < top_p[nucleus][:, None]).sum(axis=-1) + 1, V)
            kept = np.zeros((len(order), V), dtype=bool)
            np.put_along_axis(kept, order, np.arange(V) < n_keep[:, None], axis=-1)
            scaled[nucleus] = np.where(kept, scaled[nucleus], -np.inf)
            probs[nucleus] = _softmax(scaled[nucleus])
        cum = np.cumsum(probs, axis=-1)
        if not np.isfinite(cum[:, -1]).all():
            raise MicroGPTError(NOT_NUMBERS)
        rows = np.flatnonzero(drawn)
        for i, r in enumerate(rows):  # each row's own stream, in row order
            u = settings[r].rng.random() * cum[i, -1]
            tokens[r] = min(int(np.searchsorted(cum[i], u, side="right")), V - 1)
    tokens = tokens.tolist()
    out = [(t, None, []) for t in tokens]
    asked = [r for r, s in enumerate(settings) if s.logprobs]
    if asked:  # (for all the rows that ask at once: one pass, one conversion to Python numbers)
        z = logits[asked] - logits[asked].max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        chosen = logp[np.arange(len(asked)), [tokens[r] for r in asked]].tolist()
        top = _largest(logp, max(settings[r].top_logprobs for r in asked))
        top_logp = np.take_along_axis(logp, top, axis=-1).tolist()
        for i, (r, ids) in enumerate(zip(asked, top.tolist())):
            k = settings[r].top_logprobs
            out[r] = (tokens[r], chosen[i], list(zip(ids[:k], top_logp[i][:k])))
    return out


def _largest(x, k):
    """np.argsort(-x, kind="stable")[:, :k] -- each row's k largest, ties by lowest index -- as k passes of
    argmax (it takes the first of equal values) while k is small: 32 rows of a 4,096-token vocabulary,
    k = 5: ~0.2 ms against ~7 ms for sorting whole rows."""
    import numpy as np
    if k > 20 or k >= x.shape[1] or not np.isfinite(x).all():  # (20: OpenAI's most top_logprobs)
        return np.argsort(-x, axis=-1, kind="stable")[:, :k]
    x, ids, rows = x.copy(), np.empty((len(x), k), dtype=np.intp), np.arange(len(x))
    for j in range(k):
        ids[:, j] = x.argmax(axis=-1)
        x[rows, ids[:, j]] = -np.inf
    return ids


def _softmax(x):
    import numpy as np
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e * (e.sum(axis=-1, keepdims=True) ** -1)
