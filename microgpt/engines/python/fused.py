"""The fused graph: the same GPT on scalar Values, with far fewer and bigger nodes.

The textbook graph makes one node per +, *, **, log, exp and relu, so a 16-wide dot product is
~32 nodes and ~64 edges, and the Python overhead of creating and visiting nodes dominates. Here
a node is a whole small function of its children: a dot product, an attention output, a
softmax + cross-entropy. It is still a scalar `Value` with `_children` and `_local_grads`
(d node / d child), so `backward` is the same chain rule: child.grad += local_grad * node.grad.

Same numbers: every forward value is computed with the seed's float operations in the seed's
order (left-to-right sums starting from 0, x / n written as x * n**-1, ...), so logits, losses
and samples are bit-identical to the textbook graph. Gradients equal the textbook's up to the
order in which a node's contributions are added (a few ulps).

Speed: the forward pass appends every node it creates to a `tape`. Creation order is already
a topological order (a node is made after its children), so the backward pass walks the tape
in reverse instead of searching the graph (`backward` below). The loss node carries the tape.

The same API as textbook.py: loss, backward, token_losses, gpt.
"""

import itertools
import math

from microgpt.config import RMSNORM_EPS
from microgpt.engines.python.unrolled import accumulate_fn, dot_fn
from microgpt.reference import Value
from microgpt.softmax import softmax


class Loss(Value):
    """The loss node, holding every node of its graph in creation order (for `backward`)."""
    __slots__ = ("tape",)


def _snapshot(state_dict):
    """The weights as plain floats, read once per step (every position reuses them)."""
    return {name: [[w.data for w in row] for row in mat] for name, mat in state_dict.items()}


def linear(x, w, wd, tape, residual=None, relu=False):
    """One node per output: y_i = sum_j w[i][j] * x[j]  (+ residual[i]) (then relu).

    Folding the residual add and the relu into the dot node saves a node per output, and a
    relu that is off has zero local gradients, so its node keeps no children at all.
    """
    xd = [xi.data for xi in x]
    dot = dot_fn(len(xd))  # left to right from 0, as the seed's sum() (never the built-in sum() of
    out = []               # floats: Python >= 3.12 compensates it, changing the last bits)
    for i, (row, rowd) in enumerate(zip(w, wd)):
        acc = dot(rowd, xd)
        if residual is not None:
            r = residual[i]
            y = Value(acc + r.data, row + x + [r], xd + rowd + [1])
        elif relu:
            if acc > 0:
                y = Value(acc, row + x, xd + rowd)
            else:
                y = Value(max(0, acc))  # the seed's relu: no gradient flows through an off unit
        else:
            y = Value(acc, row + x, xd + rowd)
        out.append(y)
    tape.extend(out)
    return out


def rmsnorm(x, tape):
    """y_i = x_i * scale, scale = (mean(x^2) + eps) ** -0.5: one scale node, then n products."""
    xd = [xi.data for xi in x]
    acc = dot_fn(len(xd))(xd, xd)
    n = len(x)
    base = acc * n ** -1 + RMSNORM_EPS
    s = base ** -0.5
    # d scale / d x_j = -0.5 * base**-1.5 * 2 x_j / n
    c = -0.5 * base ** -1.5 * n ** -1 * 2
    scale = Value(s, x, [c * a for a in xd])
    tape.append(scale)
    out = [Value(a * s, (xi, scale), (s, a)) for xi, a in zip(x, xd)]
    tape.extend(out)
    return out


def attention_head(q_h, k_h, v_h, tape):
    """Causal self-attention for one head: softmax(q.k_t / sqrt(d)) weighted sum of the v_t.

    One node per score (a scaled dot product), then one node per output dimension j whose
    children are all the scores and the v_t[j]: out_j = sum_t w_t v_t[j], w = softmax(scores),
    with d out_j / d v_t[j] = w_t and d out_j / d score_u = w_u (v_u[j] - out_j).
    """
    head_dim = len(q_h)
    inv_sqrt = (head_dim ** 0.5) ** -1  # the seed divides by head_dim**0.5, i.e. multiplies by this
    qd = [qi.data for qi in q_h]
    dot = dot_fn(head_dim)
    scores, sd = [], []
    for k_t in k_h:
        kd = [ki.data for ki in k_t]
        acc = dot(qd, kd)
        s = Value(acc * inv_sqrt, q_h + k_t, [b * inv_sqrt for b in kd] + [a * inv_sqrt for a in qd])
        tape.append(s)
        scores.append(s)
        sd.append(s.data)
    weights = softmax(sd)  # float for float as the seed's softmax on Values
    dot = dot_fn(len(weights))
    out = []
    for j in range(head_dim):
        vj = [v_t[j] for v_t in v_h]
        vjd = [vt.data for vt in vj]
        acc = dot(weights, vjd)
        y = Value(acc, scores + vj, [wt * (a - acc) for wt, a in zip(weights, vjd)] + weights)
        tape.append(y)
        out.append(y)
    return out


def cross_entropy(logits, target_id, tape):
    """-log softmax(logits)[target] as one node; d loss / d logit_i = p_i - [i == target]."""
    probs = softmax([l.data for l in logits])
    grads = probs[:]
    grads[target_id] -= 1
    node = Value(math.log(probs[target_id]) * -1, logits, grads)
    tape.append(node)
    return node


def _gpt(state_dict, data, config, token_id, pos_id, keys, values, tape):
    n_head, head_dim = config.n_head, config.head_dim
    tok_emb, pos_emb = state_dict["wte"][token_id], state_dict["wpe"][pos_id]
    x = [Value(t.data + p.data, (t, p), (1, 1)) for t, p in zip(tok_emb, pos_emb)]
    tape.extend(x)
    x = rmsnorm(x, tape)
    for li in range(config.n_layer):
        # 1) multi-head causal self-attention
        x_residual = x
        x = rmsnorm(x, tape)
        name = f"layer{li}."
        q = linear(x, state_dict[name + "attn_wq"], data[name + "attn_wq"], tape)
        k = linear(x, state_dict[name + "attn_wk"], data[name + "attn_wk"], tape)
        v = linear(x, state_dict[name + "attn_wv"], data[name + "attn_wv"], tape)
        keys[li].append(k)
        values[li].append(v)
        x_attn = []
        for h in range(n_head):
            hs = h * head_dim
            x_attn.extend(attention_head(q[hs:hs + head_dim], [ki[hs:hs + head_dim] for ki in keys[li]],
                                         [vi[hs:hs + head_dim] for vi in values[li]], tape))
        x = linear(x_attn, state_dict[name + "attn_wo"], data[name + "attn_wo"], tape, residual=x_residual)
        # 2) MLP
        x_residual = x
        x = rmsnorm(x, tape)
        x = linear(x, state_dict[name + "mlp_fc1"], data[name + "mlp_fc1"], tape, relu=True)
        x = linear(x, state_dict[name + "mlp_fc2"], data[name + "mlp_fc2"], tape, residual=x_residual)
    return linear(x, state_dict["lm_head"], data["lm_head"], tape)


def gpt(state_dict, config, token_id, pos_id, keys, values):
    """Logits for the token after `token_id` at position `pos_id`; appends this token's k, v to the cache."""
    return _gpt(state_dict, _snapshot(state_dict), config, token_id, pos_id, keys, values, [])


def _token_losses(state_dict, data, config, seq, tape):
    keys, values = [[] for _ in range(config.n_layer)], [[] for _ in range(config.n_layer)]
    losses = []
    for pos_id in range(len(seq) - 1):
        logits = _gpt(state_dict, data, config, seq[pos_id], pos_id, keys, values, tape)
        losses.append(cross_entropy(logits, seq[pos_id + 1], tape))
    return losses


def token_losses(state_dict, config, seq):
    """The cross-entropy loss Value at each position of one token sequence."""
    return _token_losses(state_dict, _snapshot(state_dict), config, seq, [])


def loss(state_dict, config, seqs, weights=None):
    """Mean cross-entropy over every target token of every sequence (or, with `weights`, one per
    target token, their weighted sum), as one node that carries the tape for `backward`."""
    tape = []
    data = _snapshot(state_dict)
    losses = [l for seq in seqs for l in _token_losses(state_dict, data, config, seq, tape)]
    acc = 0
    if weights is None:
        for l in losses:
            acc += l.data
        inv_n = 1 / len(losses)
        node = Loss(acc * inv_n, losses, [inv_n] * len(losses))
    else:
        flat = [w for ws in weights for w in ws]
        for l, w in zip(losses, flat):  # the textbook's sum(w * l), float for float
            acc += l.data * w
        node = Loss(acc, losses, flat)
    node.tape = tape
    return node


def backward(loss_node):
    """The chain rule over the tape in reverse: the creation order is already topological."""
    loss_node.grad = 1
    for v in itertools.chain((loss_node,), reversed(loss_node.tape)):
        g = v.grad
        children = v._children
        if g and children:  # a zero gradient adds nothing to any child
            # for each child: child.grad += local_grad * g  (unrolled, see unrolled.py)
            accumulate_fn(len(children))(children, v._local_grads, g)
