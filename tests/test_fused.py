"""The fused graph of the python engine: each node's gradient, and the same numbers as the textbook graph.

    MICROGPT_DATA_DIR=/work/shared/data python -m pytest tests/test_fused.py
    ... -m slow   # the full 1000-step comparison with the textbook graph (minutes)
"""

import math
import random

import pytest
from helpers import max_abs_diff, reference_run

from microgpt.config import EngineConfig, GPTConfig, learning_rate
from microgpt.engines.python import fused, textbook
from microgpt.engines.python.engine import Model
from microgpt.engines.python.unrolled import accumulate_fn, dot_fn
from microgpt.generate import sample_texts
from microgpt.params import init_weights
from microgpt.reference import Value

# ---------------------------------------------------------------- finite-difference checks

def grad_check(build, leaves_data, seed=0, h=1e-6, tol=1e-6):
    """Compare backward's gradients with central differences of f = sum_i c_i * out_i."""
    rng = random.Random(seed)
    leaves = [Value(d) for d in leaves_data]
    tape = []
    outs = build(leaves, tape)
    coefs = [rng.uniform(-1, 1) for _ in outs]
    acc = 0.0
    for c, o in zip(coefs, outs):
        acc += c * o.data
    top = fused.Loss(acc, outs, coefs)
    top.tape = tape
    fused.backward(top)

    def f(data):
        outs = build([Value(d) for d in data], [])
        return math.fsum(c * o.data for c, o in zip(coefs, outs))

    for i, leaf in enumerate(leaves):
        up, down = list(leaves_data), list(leaves_data)
        up[i] += h
        down[i] -= h
        numeric = (f(up) - f(down)) / (2 * h)
        assert abs(leaf.grad - numeric) <= tol * max(1.0, abs(numeric)), (i, leaf.grad, numeric)


def rand(n, seed, scale=1.0):
    rng = random.Random(seed)
    return [rng.gauss(0, scale) for _ in range(n)]


@pytest.mark.parametrize("mode", ["plain", "residual", "relu"])
def test_linear_node_gradient(mode):
    n_out, n_in = 6, 5
    data = rand(n_out * n_in + n_in + n_out, 1)
    if mode == "relu":  # keep every pre-activation away from the kink at 0
        w_rows = [data[r * n_in:(r + 1) * n_in] for r in range(n_out)]
        x = data[n_out * n_in:n_out * n_in + n_in]
        for r, row in enumerate(w_rows):
            pre = sum(a * b for a, b in zip(row, x))
            if abs(pre) < 0.1:
                data[r * n_in] += 0.5 if pre >= 0 else -0.5

    def build(leaves, tape):
        w = [leaves[r * n_in:(r + 1) * n_in] for r in range(n_out)]
        x = leaves[n_out * n_in:n_out * n_in + n_in]
        res = leaves[n_out * n_in + n_in:] if mode == "residual" else None
        return fused.linear(x, w, [[v.data for v in row] for row in w], tape, residual=res, relu=mode == "relu")

    grad_check(build, data)


def test_rmsnorm_node_gradient():
    grad_check(lambda leaves, tape: fused.rmsnorm(leaves, tape), rand(8, 2))


@pytest.mark.parametrize("T", [1, 3])
def test_attention_node_gradient(T):
    hd = 4
    data = rand(hd + 2 * T * hd, 3 + T)

    def build(leaves, tape):
        q = leaves[:hd]
        ks = [leaves[hd + t * hd:hd + (t + 1) * hd] for t in range(T)]
        vs = [leaves[hd + T * hd + t * hd:hd + T * hd + (t + 1) * hd] for t in range(T)]
        return fused.attention_head(q, ks, vs, tape)

    grad_check(build, data)


def test_cross_entropy_node_gradient():
    grad_check(lambda leaves, tape: [fused.cross_entropy(leaves, 2, tape)], rand(7, 4))


@pytest.mark.parametrize("weighted", [False, True])
def test_mean_loss_node_and_gpt_gradient(weighted):
    """The whole fused forward (embeddings, every node, the mean or the weighted sum) against
    finite differences."""
    config = GPTConfig(vocab_size=5, n_layer=1, n_embd=4, n_head=2, block_size=4)
    weights = init_weights(config, random.Random(5), std=0.5)
    names = list(weights)
    shapes = [(len(weights[n]), len(weights[n][0])) for n in names]
    flat = [w for n in names for row in weights[n] for w in row]
    seqs = [[4, 1, 2, 4], [4, 3, 4]]
    weights = [[0.5, -1.0, 0.0], [2.0, 0.25]] if weighted else None

    def build(leaves, tape):
        sd, i = {}, 0
        for n, (r, c) in zip(names, shapes):
            sd[n] = [leaves[i + k * c:i + (k + 1) * c] for k in range(r)]
            i += r * c
        node = fused.loss(sd, config, seqs, weights)
        tape.extend(node.tape)  # the check's own top node walks this graph's tape too
        tape.append(node)
        return [node]

    grad_check(build, flat, tol=1e-5)


def test_unrolled_loops_match_plain_loops():
    for n in (1, 3, 16, 300):
        a, b = rand(n, n), rand(n, n + 1)
        acc = 0
        for x, y in zip(a, b):
            acc += x * y
        assert dot_fn(n)(a, b) == acc  # bit for bit: the same additions in the same order
        children = [Value(0.0) for _ in range(n)]
        accumulate_fn(n)(children, a, 2.0)
        accumulate_fn(n)(children, b, 3.0)
        assert [c.grad for c in children] == [0.0 + x * 2.0 + y * 3.0 for x, y in zip(a, b)]


# ---------------------------------------------------------------- same numbers as the textbook graph

def reference(config=None, batch_size=1):
    """The reference run's (config, train config, data, initial weights, random stream)."""
    run = reference_run(model=config, batch_size=batch_size)
    return run.config, run.cfg.train, run.ds, run.model.get_weights(), run.rng


def train_both(config, tc, ds, weights, steps, max_len=None):
    models = {g: Model(config, weights, EngineConfig(graph=g)) for g in ("textbook", "fused")}
    losses = {g: [] for g in models}
    for step in range(steps):
        seqs = ds.train_batch(step, tc.batch_size, tc.seed)
        if max_len:
            seqs = [s[:max_len] for s in seqs]
        for g, m in models.items():
            losses[g].append(m.train_step(seqs, learning_rate(tc, step), step + 1, tc))
    return models, losses


@pytest.fixture(scope="module")
def reference_30():
    config, tc, ds, weights, rng = reference()
    models, losses = train_both(config, tc, ds, weights, 30)
    return config, ds, models, losses, rng


def test_reference_steps_match_textbook(reference_30):
    _, _, models, losses, _ = reference_30
    assert f"{losses['fused'][0]:.4f}" == "3.3660"
    for lt, lf in zip(losses["textbook"], losses["fused"]):
        assert abs(lt - lf) <= 1e-12
    assert max_abs_diff(models["textbook"].get_weights(), models["fused"].get_weights()) <= 1e-12


def test_forward_is_bit_identical():
    """Same weights in: the fused graph computes every logit and loss with the seed's float operations."""
    config, tc, ds, weights, _ = reference()
    m = Model(config, weights, EngineConfig(graph="fused"))
    for seq in (ds.train_batch(s, 1, 42)[0] for s in range(5)):
        lt = [l.data for l in textbook.token_losses(m.state_dict, config, seq)]
        lf = [l.data for l in fused.token_losses(m.state_dict, config, seq)]
        assert lt == lf
        assert textbook.loss(m.state_dict, config, [seq]).data == fused.loss(m.state_dict, config, [seq]).data
        w = [[0.5 * i - 1 for i in range(len(seq) - 1)]]
        assert textbook.loss(m.state_dict, config, [seq], w).data == fused.loss(m.state_dict, config, [seq], w).data


def test_same_samples_from_same_weights(reference_30):
    config, ds, models, _, rng = reference_30
    state = rng.getstate()
    samples = {}
    for g in ("textbook", "fused"):
        rng.setstate(state)
        # same weights in both models: load the fused model's weights into a textbook-graph model
        m = Model(config, models["fused"].get_weights(), EngineConfig(graph=g))
        samples[g] = sample_texts(m, ds.tokenizer, config, "docs", rng, 20)
    assert samples["textbook"] == samples["fused"]
    assert len(set(samples["fused"])) > 1


def test_graph_size_stats():
    config, tc, ds, weights, _ = reference()
    seqs = ds.train_batch(0, 1, 42)
    sizes = {}
    for g in ("textbook", "fused"):
        m = Model(config, weights, EngineConfig(graph=g, stats=True))
        m.train_step(seqs, 0.01, 1, tc)
        sizes[g] = m.step_info()
    assert sizes["fused"]["graph_nodes"] * 5 < sizes["textbook"]["graph_nodes"]
    assert sizes["fused"]["graph_edges"] < sizes["textbook"]["graph_edges"]
    assert Model(config, weights, EngineConfig()).step_info() == {}


def test_bigger_config_agrees():
    """2 layers, n_embd 32, 4 heads, block 32, batch 4; the textbook graph is slow at this size, so
    CI runs 2 steps of short windows (the 20 full steps: test_bigger_config_agrees_full_windows)."""
    config, tc, ds, weights, _ = reference(GPTConfig(n_layer=2, n_embd=32, n_head=4, block_size=32), batch_size=4)
    _, losses = train_both(config, tc, ds, weights, 2, max_len=3)
    for lt, lf in zip(losses["textbook"], losses["fused"]):
        assert abs(lt - lf) <= 1e-10


@pytest.mark.slow
def test_bigger_config_agrees_full_windows():
    config, tc, ds, weights, _ = reference(GPTConfig(n_layer=2, n_embd=32, n_head=4, block_size=32), batch_size=4)
    models, losses = train_both(config, tc, ds, weights, 20)
    for lt, lf in zip(losses["textbook"], losses["fused"]):
        assert abs(lt - lf) <= 1e-10


@pytest.mark.slow
def test_full_reference_run_matches_textbook():
    config, tc, ds, weights, rng = reference()
    models, losses = train_both(config, tc, ds, weights, tc.steps)
    for lt, lf in zip(losses["textbook"], losses["fused"]):
        assert abs(lt - lf) <= 1e-12
    assert f"{losses['fused'][-1]:.4f}" == "2.6497"
    state = rng.getstate()
    samples = {}
    for g, m in models.items():
        rng.setstate(state)
        samples[g] = sample_texts(m, ds.tokenizer, config, "docs", rng, 20)
    assert samples["textbook"] == samples["fused"]
    assert samples["fused"][:5] == ["kamon", "ann", "karai", "jaire", "vialan"]
