"""The whole GPT in one file: the seed's reference run, top to bottom, standard library only.

    python -m microgpt.reference                  # the seed's run: 1000 steps on 32,033 names, 20 samples
    python -m microgpt.reference --steps 200 --data my_words.txt

Data -> character tokenizer -> scalar autograd (`Value`) -> parameters -> the GPT (`gpt`) ->
training with Adam -> sampling, printing exactly what the seed's microgpt.py prints. The python
engine's textbook graph *is* this file's `Value` and `gpt`; a test checks the runs agree.
"""

import argparse
import math
import os
import random
import urllib.request

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/988aa59e4d8fefa526d06f3b453ad116258398d4/names.txt"


# ----------------------------------------------------------------------------- 1. data
def load_docs(path=None):
    """One document per non-empty line: the given file, $MICROGPT_DATA_DIR/names.txt, or a download."""
    if path is None and os.environ.get("MICROGPT_DATA_DIR"):
        path = os.path.join(os.environ["MICROGPT_DATA_DIR"], "names.txt")
    if path is None:  # as the seed does: fetch the names
        text = urllib.request.urlopen(NAMES_URL, timeout=30).read().decode("utf-8")
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    return [line.strip() for line in text.strip().split("\n") if line.strip()]


# ----------------------------------------------------------------------------- 2. tokenizer
class Tokenizer:
    """Each distinct character is a token id; one extra token, BOS, marks where a document
    begins and ends (the model learns to emit it when a name is complete)."""

    def __init__(self, docs):
        self.chars = sorted(set("".join(docs)))
        self.BOS = len(self.chars)
        self.vocab_size = len(self.chars) + 1

    def encode(self, doc):
        return [self.chars.index(ch) for ch in doc]


# ----------------------------------------------------------------------------- 3. autograd
class Value:
    """One scalar that remembers how it was computed: its children and d(self)/d(child). backward()
    multiplies these along every path from the loss (the chain rule), summing at each node."""
    __slots__ = ("data", "grad", "_children", "_local_grads")

    def __init__(self, data, children=(), local_grads=()):
        self.data = data                 # the number, computed in the forward pass
        self.grad = 0                    # d(loss)/d(this), filled in by backward()
        self._children = children
        self._local_grads = local_grads

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data + other.data, (self, other), (1, 1))

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        return Value(self.data * other.data, (self, other), (other.data, self.data))

    def __pow__(self, other):  # other is a plain number
        return Value(self.data ** other, (self,), (other * self.data ** (other - 1),))

    def log(self):
        return Value(math.log(self.data), (self,), (1 / self.data,))

    def exp(self):
        e = math.exp(self.data)
        return Value(e, (self,), (e,))

    def relu(self):
        return Value(max(0, self.data), (self,), (float(self.data > 0),))

    def __neg__(self): return self * -1
    def __radd__(self, other): return self + other
    def __sub__(self, other): return self + (-other)
    def __rsub__(self, other): return other + (-self)
    def __rmul__(self, other): return self * other
    def __truediv__(self, other): return self * other ** -1
    def __rtruediv__(self, other): return other * self ** -1

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

    def topo_order(self):
        """Every node this one depends on, children before parents (iterative: deep graphs are fine)."""
        topo, visited, stack = [], set(), [(self, False)]
        while stack:
            v, expanded = stack.pop()
            if expanded:
                topo.append(v)
            elif id(v) not in visited:
                visited.add(id(v))
                stack.append((v, True))
                stack.extend((c, False) for c in reversed(v._children) if id(c) not in visited)
        return topo

    def backward(self):
        self.grad = 1
        for v in reversed(self.topo_order()):  # a node's grad is complete before it is passed on
            for child, local_grad in zip(v._children, v._local_grads):
                child.grad += local_grad * v.grad


# ----------------------------------------------------------------------------- 4. parameters
class Config:
    n_layer, n_embd, n_head, block_size = 1, 16, 4, 16

    def __init__(self, vocab_size):
        self.vocab_size = vocab_size
        self.head_dim = self.n_embd // self.n_head


def init_params(config, std=0.08):
    """The weight matrices, [out][in], drawn one number at a time from the global random stream."""
    matrix = lambda n_out, n_in: [[Value(random.gauss(0, std)) for _ in range(n_in)] for _ in range(n_out)]
    C = config.n_embd
    state_dict = {"wte": matrix(config.vocab_size, C), "wpe": matrix(config.block_size, C),
                  "lm_head": matrix(config.vocab_size, C)}
    for i in range(config.n_layer):
        for name in ("attn_wq", "attn_wk", "attn_wv", "attn_wo"):
            state_dict[f"layer{i}.{name}"] = matrix(C, C)
        state_dict[f"layer{i}.mlp_fc1"] = matrix(4 * C, C)
        state_dict[f"layer{i}.mlp_fc2"] = matrix(C, 4 * C)
    return state_dict


# ----------------------------------------------------------------------------- 5. the GPT
def linear(x, w):
    return [sum(wi * xi for wi, xi in zip(wo, x)) for wo in w]


def softmax(logits):
    max_val = max(val.data for val in logits)  # subtracting the max changes nothing but overflow
    exps = [(val - max_val).exp() for val in logits]
    total = sum(exps)
    return [e / total for e in exps]


def rmsnorm(x):
    ms = sum(xi * xi for xi in x) / len(x)
    scale = (ms + 1e-5) ** -0.5
    return [xi * scale for xi in x]


def gpt(state_dict, config, token_id, pos_id, keys, values):
    """Logits for the token after `token_id` at position `pos_id`. keys/values (one list per
    layer) cache the earlier positions, so each token is computed once: the KV cache."""
    n_head, head_dim = config.n_head, config.head_dim
    x = [t + p for t, p in zip(state_dict["wte"][token_id], state_dict["wpe"][pos_id])]
    x = rmsnorm(x)
    for li in range(config.n_layer):
        # 1) multi-head causal self-attention: this token looks at itself and every earlier one
        x_residual = x
        x = rmsnorm(x)
        q = linear(x, state_dict[f"layer{li}.attn_wq"])
        k = linear(x, state_dict[f"layer{li}.attn_wk"])
        v = linear(x, state_dict[f"layer{li}.attn_wv"])
        keys[li].append(k)
        values[li].append(v)
        x_attn = []
        for h in range(n_head):
            hs = h * head_dim
            q_h = q[hs:hs + head_dim]
            k_h = [ki[hs:hs + head_dim] for ki in keys[li]]
            v_h = [vi[hs:hs + head_dim] for vi in values[li]]
            attn_logits = [sum(q_h[j] * k_h[t][j] for j in range(head_dim)) / head_dim ** 0.5
                           for t in range(len(k_h))]
            attn_weights = softmax(attn_logits)
            head_out = [sum(attn_weights[t] * v_h[t][j] for t in range(len(v_h))) for j in range(head_dim)]
            x_attn.extend(head_out)
        x = linear(x_attn, state_dict[f"layer{li}.attn_wo"])
        x = [a + b for a, b in zip(x, x_residual)]
        # 2) MLP: think about what was gathered, one position at a time
        x_residual = x
        x = rmsnorm(x)
        x = [xi.relu() for xi in linear(x, state_dict[f"layer{li}.mlp_fc1"])]
        x = linear(x, state_dict[f"layer{li}.mlp_fc2"])
        x = [a + b for a, b in zip(x, x_residual)]
    return linear(x, state_dict["lm_head"])


def token_losses(state_dict, config, tokens):
    """-log p(next token) at each position of one token sequence: the cross-entropy loss."""
    keys, values = [[] for _ in range(config.n_layer)], [[] for _ in range(config.n_layer)]
    losses = []
    for pos_id in range(len(tokens) - 1):
        probs = softmax(gpt(state_dict, config, tokens[pos_id], pos_id, keys, values))
        losses.append(-probs[tokens[pos_id + 1]].log())
    return losses


# ----------------------------------------------------------------------------- 6. training with Adam
def train(docs, tok, config, state_dict, num_steps, lr=0.01, beta1=0.85, beta2=0.99, eps=1e-8, log=print):
    params = [p for mat in state_dict.values() for row in mat for p in row]
    m = [0.0] * len(params)  # Adam's running mean of gradients...
    v = [0.0] * len(params)  # ...and of squared gradients: a per-parameter step size
    losses = []
    for step in range(num_steps):
        # one document per step: [BOS] + its characters + [BOS], cut to the model's context
        tokens = [tok.BOS] + tok.encode(docs[step % len(docs)]) + [tok.BOS]
        n = min(config.block_size, len(tokens) - 1)
        loss = (1 / n) * sum(token_losses(state_dict, config, tokens[:n + 1]))
        loss.backward()
        lr_t = lr * (1 - step / num_steps)  # linear decay to 0
        for i, p in enumerate(params):
            m[i] = beta1 * m[i] + (1 - beta1) * p.grad
            v[i] = beta2 * v[i] + (1 - beta2) * p.grad ** 2
            m_hat = m[i] / (1 - beta1 ** (step + 1))  # bias correction: m and v start at 0
            v_hat = v[i] / (1 - beta2 ** (step + 1))
            p.data -= lr_t * m_hat / (v_hat ** 0.5 + eps)
            p.grad = 0
        losses.append(loss.data)
        log(f"step {step + 1:4d} / {num_steps:4d} | loss {loss.data:.4f}")
    return losses


# ----------------------------------------------------------------------------- 7. sampling
def sample(tok, config, state_dict, temperature=0.5):
    """One new document: feed BOS, then draw each next token from softmax(logits / T) until BOS."""
    keys, values = [[] for _ in range(config.n_layer)], [[] for _ in range(config.n_layer)]
    token_id, out = tok.BOS, []
    for pos_id in range(config.block_size):
        probs = softmax([l / temperature for l in gpt(state_dict, config, token_id, pos_id, keys, values)])
        token_id = random.choices(range(tok.vocab_size), weights=[p.data for p in probs])[0]
        if token_id == tok.BOS:
            break
        out.append(tok.chars[token_id])
    return "".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description="The seed's reference run, in one file.")
    parser.add_argument("--data", help="one document per line (default: names.txt)")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    args = parser.parse_args(argv)
    random.seed(42)  # one random stream, used in this order: shuffle, parameters, sampling
    try:
        docs = load_docs(args.data)
    except (OSError, UnicodeDecodeError) as e:  # a missing file, no network, not UTF-8 text
        parser.exit(2, f"error: cannot read the data ({e}): check --data or $MICROGPT_DATA_DIR\n")
    random.shuffle(docs)
    tok = Tokenizer(docs)
    config = Config(tok.vocab_size)
    state_dict = init_params(config)
    print(f"num docs: {len(docs)}, vocab size: {tok.vocab_size}, "
          f"num params: {sum(len(row) for mat in state_dict.values() for row in mat)}")
    train(docs, tok, config, state_dict, args.steps)
    print("--- inference (new, hallucinated names) ---")
    for i in range(20):
        print(f"sample {i + 1:2d}: {sample(tok, config, state_dict)}")


if __name__ == "__main__":
    main()
