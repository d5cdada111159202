"""The modern parts: rotary positions, QK-norm, ReLU^2, final norm, soft cap and
Muon. Each numpy op against finite differences; the whole model with everything on against
finite differences; numpy = torch in float64 for each part and for Muon; exact resume; the
python engine's refusal. (Hugging Face's NanoChatForCausalLM: tests/test_modern_hf.py.)"""

import random

import pytest

np = pytest.importorskip("numpy")

from helpers import FLOAT64, assert_one_line_error, max_abs_diff, run_cli  # noqa: E402
from test_numpy_engine import grad_check  # noqa: E402

from microgpt import MicroGPTError, checkpoint  # noqa: E402
from microgpt.config import GPTConfig, TrainConfig, arch_preset, expand_arch, learning_rate  # noqa: E402
from microgpt.engines import get_engine  # noqa: E402
from microgpt.engines.numpy_engine import modern as M  # noqa: E402
from microgpt.engines.numpy_engine.muon import newton_schulz  # noqa: E402
from microgpt.params import init_weights, num_params, param_shapes  # noqa: E402

rs = np.random.default_rng(7)
PARTS = {"rope": dict(pos="rope"), "qk_norm": dict(qk_norm=True), "relu2": dict(mlp="relu2"),
         "final_norm": dict(final_norm=True), "softcap": dict(softcap=2.0), "nanochat": arch_preset("nanochat")}
SMALL = dict(vocab_size=7, n_layer=2, n_embd=8, n_head=2, block_size=6)


# ---------------------------------------------------------------- each new op against finite differences

def test_reshape():
    grad_check(lambda x: M.reshape(x, (2, 6, 2)), rs.standard_normal((2, 3, 4)))


@pytest.mark.parametrize("pos0,T", [(0, 5), (3, 2), (5, 1)])
def test_rope(pos0, T):
    config = GPTConfig(n_embd=8, n_head=2, block_size=6, pos="rope", rope_theta=7.0)
    grad_check(lambda x: M.rope(x, 2, pos0, config), rs.standard_normal((2, T, 8)))


def test_rope_is_a_rotation_that_depends_on_the_distance_only():
    """|rope(x)| = |x| per head, and q_p . k_t is a function of p - t."""
    config = GPTConfig(n_embd=8, n_head=2, block_size=9, pos="rope")
    q, k = rs.standard_normal(8), rs.standard_normal(8)
    at = lambda v, p: M.rope(M.Tensor(np.tile(v, (1, 1, 1))), 2, p, config).data[0, 0]
    np.testing.assert_allclose(np.linalg.norm(at(q, 5)[:4]), np.linalg.norm(q[:4]), rtol=1e-14)
    dots = [at(q, p) @ at(k, p - 2) for p in (2, 4, 8)]
    np.testing.assert_allclose(dots, dots[0], rtol=1e-12)
    assert not np.isclose(at(q, 3) @ at(k, 0), dots[0])


def test_head_rmsnorm():
    grad_check(lambda x: M.head_rmsnorm(x, 3), rs.standard_normal((2, 3, 6)))
    y = M.head_rmsnorm(M.Tensor(rs.standard_normal((1, 2, 6)) * 100), 3).data.reshape(1, 2, 3, 2)
    np.testing.assert_allclose((y * y).mean(-1), 1, rtol=1e-5)  # each head's slice has unit rms


def test_square_and_relu2():
    grad_check(M.square, rs.standard_normal((3, 5)))
    x = rs.standard_normal((3, 7))
    x[np.abs(x) < 1e-3] = 0.5  # clear of the kink
    grad_check(M.relu2, x)
    np.testing.assert_array_equal(M.relu2(M.Tensor(x)).data, np.maximum(x, 0) ** 2)


def test_softcap():
    grad_check(lambda x: M.softcap(x, 1.5), rs.standard_normal((2, 3, 4)) * 3)
    assert np.abs(M.softcap(M.Tensor(np.array([1e3, -1e3, 0.0])), 15.0).data).max() <= 15.0


# ---------------------------------------------------------------- the whole model

def _weights(config, seed=3, std=0.4):
    return init_weights(config, random.Random(seed), std=std)


def test_whole_model_with_every_part_against_finite_differences():
    """d loss / d w of every matrix (8 entries each, drawn at random) against central differences,
    with every part on (the soft cap low enough to bend the logits)."""
    config = GPTConfig(vocab_size=5, n_layer=2, n_embd=8, n_head=2, block_size=4,
                       **{**arch_preset("nanochat"), "softcap": 3.0})
    model = get_engine("numpy").Model(config, _weights(config, std=0.4), FLOAT64["numpy"])
    seqs = [[4, 1, 2, 3, 0], [4, 0, 3]]
    _, grads = model.loss_and_grads(seqs)
    mean_loss = lambda: sum(map(sum, model.token_losses(seqs))) / 6
    rng, h = np.random.default_rng(0), 1e-6
    for name, p in model.params.items():
        for i in zip(*(rng.integers(0, n, 8) for n in p.data.shape)):
            x0 = p.data[i]
            p.data[i] = x0 + h
            up = mean_loss()
            p.data[i] = x0 - h
            down = mean_loss()
            p.data[i] = x0
            numeric = (up - down) / (2 * h)
            assert abs(grads[name][i] - numeric) <= 1e-7 * max(1, abs(numeric)), (name, i, grads[name][i], numeric)


def test_the_seed_defaults_are_unchanged():
    seed = GPTConfig()
    assert seed.is_seed and GPTConfig(**arch_preset("seed")) == seed
    assert [n for n, _ in param_shapes(seed)][:3] == ["wte", "wpe", "lm_head"] and num_params(seed) == 4192
    rope = GPTConfig(pos="rope")
    assert [n for n, _ in param_shapes(rope)][:3] == ["wte", "lm_head", "layer0.attn_wq"]
    assert num_params(rope) == 4192 - 16 * 16 == sum(a * b for _, (a, b) in param_shapes(rope))
    # the seed's draws in the seed's order, with no draws for wpe: lm_head right after wte
    rng = random.Random(3)
    draws = [rng.gauss(0, 0.4) for _ in range(2 * 27 * 16)]
    wr = _weights(rope)
    assert "wpe" not in wr and [x for row in wr["wte"] + wr["lm_head"] for x in row] == draws


@pytest.mark.parametrize("part", list(PARTS))
@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_kv_cache_equals_full_recomputation(engine, part):
    module = _engine_or_skip(engine)
    config = GPTConfig(**SMALL, **PARTS[part])
    model = module.Model(config, _weights(config), FLOAT64[engine])
    rows = [[6, 1, 4, 4, 2, 0, 3], [6, 0, 0, 5, 3, 1, 2]]
    full = np.array(model.token_losses(rows))  # [2, 6]: the whole sequences at once
    gen = model.generator(batch_size=2)
    cached = np.zeros((2, 6))
    for pos in range(6):  # one token per row at a time, through the KV cache
        logits = np.array(gen.next_logits([r[pos] for r in rows], pos))
        z = logits - logits.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        cached[:, pos] = [-logp[b, rows[b][pos + 1]] for b in range(2)]
    assert np.abs(cached - full).max() <= 1e-12


# ---------------------------------------------------------------- numpy = torch in float64

def _engine_or_skip(name):
    try:
        return get_engine(name)
    except MicroGPTError as e:
        pytest.skip(str(e))


def _pair(config, seed=4, std=0.4):
    _engine_or_skip("torch")
    w = _weights(config, seed, std)
    return (get_engine("numpy").Model(config, w, FLOAT64["numpy"]),
            get_engine("torch").Model(config, w, FLOAT64["torch"]))


def _batches(n, seed=5, block=6):
    rng = random.Random(seed)
    return [[[6] + [rng.randrange(6) for _ in range(rng.randint(1, block - 1))] + [6] for _ in range(3)]
            for _ in range(n)]


@pytest.mark.parametrize("part", list(PARTS))
def test_numpy_equals_torch_gradients(part):
    config = GPTConfig(**SMALL, **PARTS[part])
    a, b = _pair(config)
    seqs = _batches(1)[0]
    signed = [[1.0, -0.5, 2.0, 0.0, 0.3, 1.0][:len(s) - 1] for s in seqs]  # per-token weights (SFT, RL)
    for w in (None, signed):
        (la, ga), (lb, gb) = a.loss_and_grads(seqs, w), b.loss_and_grads(seqs, w)
        assert abs(la - lb) <= 1e-10 and max_abs_diff(ga, gb) <= 1e-10


@pytest.mark.parametrize("part,optimizer", [(p, "adam") for p in PARTS] + [("seed", "muon"), ("nanochat", "muon")])
def test_numpy_equals_torch_over_a_short_run(part, optimizer):
    """20 steps of Adam (or Muon + AdamW, with weight decay): every loss to 1e-9, weights and state too."""
    config = GPTConfig(**SMALL, **(PARTS.get(part) or {}))
    a, b = _pair(config)
    tc = TrainConfig(steps=20, lr=0.02, optimizer=optimizer, weight_decay=0.1, muon_lr=0.05)
    for step, seqs in enumerate(_batches(tc.steps)):
        lr = learning_rate(tc, step)
        assert abs(a.train_step(seqs, lr, step + 1, tc) - b.train_step(seqs, lr, step + 1, tc)) <= 1e-9
    assert max_abs_diff(a.get_weights(), b.get_weights()) <= 1e-9
    sa, sb = a.get_optimizer_state(), b.get_optimizer_state()
    assert max_abs_diff(sa["m"], sb["m"]) <= 1e-9 and max_abs_diff(sa["v"], sb["v"]) <= 1e-9
    if optimizer == "muon":  # the documented format: momentum in m, zeros in v for the layers' matrices
        assert all(not np.any(sa["v"][n]) for n in sa["v"] if n.startswith("layer"))
        assert all(np.any(sa["m"][n]) and np.any(sa["v"][n]) for n in ("wte", "lm_head"))


# ---------------------------------------------------------------- Muon itself

def test_newton_schulz_orthogonalises():
    """G = U diag(s) V^T with s spread over 2 decades: NS5(G) = U diag(s') V^T, the same singular
    vectors and every s' near 1 (in [0.6, 1.2]: ~ U V^T), for wide, tall and square matrices,
    one at a time or stacked."""
    r = np.random.default_rng(0)
    stack = []
    for shape in ((6, 24), (24, 6), (8, 8)):
        n = min(shape)
        U, V = np.linalg.qr(r.standard_normal((shape[0], n)))[0], np.linalg.qr(r.standard_normal((shape[1], n)))[0]
        G = U @ np.diag(np.geomspace(1, 1e-2, n) * 7.0) @ V.T
        D = U.T @ newton_schulz(G) @ V
        np.testing.assert_allclose(D - np.diag(np.diag(D)), 0, atol=1e-12)
        assert np.diag(D).min() >= 0.6 and np.diag(D).max() <= 1.2, np.diag(D)
        stack.append(G)
    both = newton_schulz(np.stack([stack[2], 2 * stack[2]]))  # each its own: (2G's only through eps)
    np.testing.assert_allclose(both[0], newton_schulz(stack[2]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(both[1], both[0], rtol=0, atol=1e-6)


def test_torch_muon_is_the_same_algorithm_in_bfloat16():
    """torch.optim.Muon (nesterov, adjust_lr_fn "original", no decay) makes the update we make, but
    it orthogonalises in bfloat16: close (a few % of the step), not equal (why the engine writes its own)."""
    torch = pytest.importorskip("torch")
    from microgpt.engines.torch_engine.muon import muon_step
    r = np.random.default_rng(0)
    g = torch.tensor(r.standard_normal((3, 12, 4)), dtype=torch.float64)
    w0 = torch.tensor(r.standard_normal((12, 4)), dtype=torch.float64)
    ours, theirs = w0.clone().requires_grad_(), w0.clone().requires_grad_()
    opt = torch.optim.Muon([theirs], lr=0.1, weight_decay=0.0, momentum=0.9, adjust_lr_fn="original")
    buf = torch.zeros_like(w0)
    for gi in g:  # three steps: the momentum buffers must agree too
        ours.grad, theirs.grad = gi.clone(), gi.clone()
        muon_step([ours], [buf], 0.1, 0.9, 0.0)
        opt.step()
    diff, moved = (ours - theirs).abs().max().item(), (ours - w0).abs().max().item()
    assert 1e-4 * moved < diff < 5e-2 * moved  # (seeds 0-7: 1.1% to 2.0% of the largest move)


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_muon_resumes_exactly(engine):
    """N steps in one go = k steps, the state handed out (as a checkpoint saves it), N - k more in
    a new model from that state: bit for bit."""
    module = _engine_or_skip(engine)
    config = GPTConfig(**SMALL, **arch_preset("nanochat"))
    tc = TrainConfig(steps=10, lr=0.02, optimizer="muon", weight_decay=0.1)
    opts = FLOAT64[engine]
    batches = _batches(tc.steps)
    straight = module.Model(config, _weights(config), opts)
    first = module.Model(config, _weights(config), opts)
    for step, seqs in enumerate(batches):
        straight.train_step(seqs, learning_rate(tc, step), step + 1, tc)
        if step < 4:
            first.train_step(seqs, learning_rate(tc, step), step + 1, tc)
    second = module.Model(config, first.get_weights(), opts)
    second.set_optimizer_state(first.get_optimizer_state())
    for step in range(4, tc.steps):
        second.train_step(batches[step], learning_rate(tc, step), step + 1, tc)
    assert max_abs_diff(second.get_weights(), straight.get_weights()) == 0


# ---------------------------------------------------------------- configs, the CLI, the python engine

def test_bad_options_are_one_line_errors():
    for kw, words in ((dict(pos="alibi"), "--pos"), (dict(mlp="gelu"), "--mlp"), (dict(softcap=-1.0), "--softcap"),
                      (dict(n_embd=6, n_head=2, pos="rope"), "even"), (dict(rope_theta=0.0), "--rope-theta")):
        with pytest.raises(MicroGPTError, match=words):
            GPTConfig(**kw).validate()
    with pytest.raises(MicroGPTError, match="--optimizer"):
        TrainConfig(optimizer="sgd").validate()
    with pytest.raises(MicroGPTError, match="--arch"):
        arch_preset("llama")
    assert expand_arch({"arch": "nanochat", "model.softcap": 30.0})["model.softcap"] == 30.0
    assert expand_arch({"arch": "nanochat"})["model.pos"] == "rope"


def test_python_engine_refuses_the_modern_parts():
    py = get_engine("python")
    with pytest.raises(MicroGPTError, match="numpy or torch"):
        py.Model(GPTConfig(mlp="relu2"), _weights(GPTConfig()), FLOAT64["python"])
    model = py.Model(GPTConfig(), _weights(GPTConfig()), FLOAT64["python"])
    with pytest.raises(MicroGPTError, match="numpy or torch"):
        model.check_training(TrainConfig(optimizer="muon"))


def test_cli_nanochat_muon_run_resumes_exactly(tmp_path, words):
    """Through the CLI and the checkpoint files (the engines' state: test_muon_resumes_exactly)."""
    flags = ["--engine", "numpy", "--dtype", "float64", "--arch", "nanochat", "--optimizer", "muon", "--steps", "8",
             "--n-embd", "8", "--n-head", "2", "--batch-size", "3", "--data", words, "--eval-every", "0",
             "--num-samples", "2", "--threads", "1"]
    run_cli("train", "--out", tmp_path / "a", *flags, check=True)
    run_cli("train", "--out", tmp_path / "b", *flags, "--stop-after", "3", check=True)
    run_cli("train", "--out", tmp_path / "b", "--resume", check=True)
    a, b = checkpoint.load(str(tmp_path / "a")), checkpoint.load(str(tmp_path / "b"))
    assert a.weights == b.weights and a.optimizer == b.optimizer and "wpe" not in a.weights
    assert a.config == GPTConfig(**{**a.config.to_dict(), **arch_preset("nanochat")}) and a.train.optimizer == "muon"
    p = run_cli("train", "--out", tmp_path / "c", "--arch", "nanochat", "--data", words, "--steps", "2")
    assert_one_line_error(p, "numpy or torch")
    assert not (tmp_path / "c").exists()
