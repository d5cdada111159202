"""Every rung of the ladder is the same model: in float64 the array engines give the python
engine's gradients (1e-10) and the reference run's losses (1e-9) and samples; checkpoints move
between engines, resume included."""

import random

import pytest
from helpers import FIRST_FIVE, FLOAT64, max_abs_diff, printed_losses, printed_samples, recorded_losses, run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from microgpt import MicroGPTError, checkpoint
from microgpt.config import GPTConfig, TrainConfig, learning_rate
from microgpt.engines import get_engine
from microgpt.params import init_weights

ARRAY_ENGINES = ["numpy", "torch"]


def engine_or_skip(name):
    try:
        return get_engine(name)
    except MicroGPTError as e:
        pytest.skip(str(e))


def python_and(engine, seed, std):
    """A small 2-layer config and, from the same seeded weights, a python-engine model and the
    engine's float64 model."""
    module = engine_or_skip(engine)
    config = GPTConfig(vocab_size=7, n_layer=2, n_embd=8, n_head=2, block_size=6)
    weights = init_weights(config, random.Random(seed), std=std)
    py = get_engine("python").Model(config, weights, FLOAT64["python"])
    return config, py, module.Model(config, weights, FLOAT64[engine])


@st.composite
def small_problems(draw):
    """A random small config, weights, and a batch of 1-3 token sequences of different lengths."""
    n_head = draw(st.integers(1, 3))
    config = GPTConfig(vocab_size=draw(st.integers(2, 8)), n_layer=draw(st.integers(1, 2)),
                       n_embd=n_head * draw(st.integers(1, 4)), n_head=n_head, block_size=draw(st.integers(2, 8)))
    rng = random.Random(draw(st.integers(0, 2 ** 32)))
    weights = init_weights(config, rng, std=draw(st.sampled_from([0.08, 0.5])))
    seqs = [[rng.randrange(config.vocab_size) for _ in range(rng.randint(2, config.block_size + 1))]
            for _ in range(draw(st.integers(1, 3)))]
    return config, weights, seqs


@pytest.mark.parametrize("engine", ARRAY_ENGINES)
@settings(max_examples=25, deadline=None)
@given(problem=small_problems())
def test_gradients_at_init_equal_the_python_engine(engine, problem):
    module = engine_or_skip(engine)
    config, weights, seqs = problem
    loss_py, grads_py = get_engine("python").Model(config, weights, FLOAT64["python"]).loss_and_grads(seqs)
    loss, grads = module.Model(config, weights, FLOAT64[engine]).loss_and_grads(seqs)
    assert abs(loss - loss_py) <= 1e-10
    assert max_abs_diff(grads, grads_py) <= 1e-10


@pytest.mark.parametrize("engine", ARRAY_ENGINES)
@settings(max_examples=25, deadline=None)
@given(problem=small_problems(), data=st.data())
def test_weighted_loss_and_gradients_equal_the_python_engine(engine, problem, data):
    """Per-target-token weights (an SFT mask, RL advantages: any real numbers, zeros included)."""
    module = engine_or_skip(engine)
    config, weights, seqs = problem
    w = [data.draw(st.lists(st.sampled_from([0.0, 1.0, -0.75, 0.3, 2.5]), min_size=len(s) - 1,
                            max_size=len(s) - 1)) for s in seqs]
    loss_py, grads_py = get_engine("python").Model(config, weights, FLOAT64["python"]).loss_and_grads(seqs, w)
    loss, grads = module.Model(config, weights, FLOAT64[engine]).loss_and_grads(seqs, w)
    assert abs(loss - loss_py) <= 1e-10
    assert max_abs_diff(grads, grads_py) <= 1e-10


@pytest.mark.parametrize("engine", ARRAY_ENGINES)
def test_reference_run_equals_the_python_engine(engine, reference_run_cli, tmp_path):
    engine_or_skip(engine)
    ref_out, ref_stdout = reference_run_cli
    out = tmp_path / engine
    flags = ["--device", "cpu"] if engine == "torch" else []
    p = run_cli("train", "--engine", engine, "--dtype", "float64", *flags, "--out", out, check=True)
    losses, ref_losses = recorded_losses(out), recorded_losses(ref_out)
    assert len(losses) == len(ref_losses) == 1000
    assert max(abs(a - b) for a, b in zip(losses, ref_losses)) <= 1e-9
    assert printed_losses(p.stdout)[1] == "3.3660" and printed_losses(p.stdout)[1000] == "2.6497"
    assert printed_samples(p.stdout) == printed_samples(ref_stdout)
    assert printed_samples(p.stdout)[:5] == FIRST_FIVE


QUICK = ["--steps", "20", "--n-embd", "8", "--n-head", "2", "--batch-size", "3", "--weight-decay", "0.1",
         "--eval-every", "0", "--num-samples", "3"]


@pytest.mark.parametrize("engine", ARRAY_ENGINES)
def test_checkpoints_move_between_engines(engine, tmp_path, names_path):
    """Trained by one engine, sampled and evaluated by another: the same samples and losses;
    stopped in one engine and resumed in the other: the weights of an unbroken run."""
    engine_or_skip(engine)
    flags = ["--dtype", "float64"] + (["--device", "cpu"] if engine == "torch" else [])
    straight = run_cli("train", "--out", tmp_path / "py", *QUICK, check=True)
    run_cli("train", "--out", tmp_path / "mixed", *QUICK, "--stop-after", "10", check=True)
    resumed = run_cli("train", "--out", tmp_path / "mixed", "--resume", "--engine", engine, *flags,
                      "--num-samples", "3", check=True)
    a = checkpoint.load(str(tmp_path / "py")).weights
    b = checkpoint.load(str(tmp_path / "mixed")).weights
    assert max_abs_diff(a, b) <= 1e-9
    assert printed_samples(resumed.stdout) == printed_samples(straight.stdout)
    # a python-trained run sampled, and a mixed run evaluated, by the array engine and by python
    outputs = {}
    for e in (engine, "python"):
        extra = flags if e == engine else []
        outputs[e] = (run_cli("sample", "--out", tmp_path / "py", "--engine", e, *extra, "--num", "5", "--seed", "1",
                              check=True).stdout,
                      run_cli("eval", "--out", tmp_path / "mixed", "--engine", e, *extra, "--max-docs", "200",
                              check=True).stdout)
    assert outputs[engine] == outputs["python"]


@pytest.mark.parametrize("engine", ARRAY_ENGINES)
def test_batched_training_equals_the_python_engine(engine):
    """2 layers, padded batches of 3, 12 Adam steps: every loss, the weights and the moments to 1e-9."""
    _, py, model = python_and(engine, seed=4, std=0.3)
    tc, rng = TrainConfig(steps=12, lr=0.02), random.Random(5)
    for step in range(tc.steps):
        seqs = [[6] + [rng.randrange(6) for _ in range(rng.randint(1, 5))] + [6] for _ in range(3)]
        lr = learning_rate(tc, step)
        assert abs(model.train_step(seqs, lr, step + 1, tc) - py.train_step(seqs, lr, step + 1, tc)) <= 1e-9
    assert max_abs_diff(model.get_weights(), py.get_weights()) <= 1e-9
    assert max_abs_diff(model.get_optimizer_state()["v"], py.get_optimizer_state()["v"]) <= 1e-9


@pytest.mark.parametrize("engine", ARRAY_ENGINES)
def test_kv_cache_logits_and_token_losses_equal_the_python_engine(engine):
    config, py, model = python_and(engine, seed=3, std=0.5)
    seqs = [[6, 1, 2, 3, 6], [6, 4, 6], [6, 0, 1, 2, 3, 4, 5]]
    got, want = model.token_losses(seqs), py.token_losses(seqs)
    assert [len(l) for l in got] == [len(l) for l in want] == [4, 2, 6]
    assert max(abs(a - b) for ga, wa in zip(got, want) for a, b in zip(ga, wa)) <= 1e-10
    rows = [[6, 0, 5, 5, 2, 1], [6, 3, 3, 1, 0, 6]]
    gen_py, gen = py.generator(2), model.generator(2)
    for pos in range(6):  # block_size positions, one token per row at a time
        a, b = gen.next_logits([r[pos] for r in rows], pos), gen_py.next_logits([r[pos] for r in rows], pos)
        assert len(a) == 2 and len(a[0]) == config.vocab_size
        assert max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)) <= 1e-10
