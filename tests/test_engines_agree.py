"""Every rung of the ladder is the same model: in float64 the array engines give the python
engine's gradients (1e-10) and the reference run's losses (1e-9) and samples; checkpoints move
between engines, resume included."""

import random

import pytest
from hypothesis import given, settings, strategies as st

from conftest import FIRST_FIVE, printed_losses, printed_samples, recorded_losses, run_cli
from microgpt import MicroGPTError, checkpoint
from microgpt.config import GPTConfig
from microgpt.engines import get_engine
from microgpt.init import init_weights

ARRAY_ENGINES = ["numpy", "torch"]
FLOAT64 = {"numpy": {"dtype": "float64"}, "torch": {"dtype": "float64", "device": "cpu"}}


def engine_or_skip(name):
    try:
        return get_engine(name)
    except MicroGPTError as e:
        pytest.skip(str(e))


def as_floats(matrix):
    return [float(x) for row in matrix for x in row]


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
    loss_py, grads_py = get_engine("python").Model(config, weights, {}).loss_and_grads(seqs)
    loss, grads = module.Model(config, weights, FLOAT64[engine]).loss_and_grads(seqs)
    assert abs(loss - loss_py) <= 1e-10
    for name in grads_py:
        for a, b in zip(as_floats(grads[name]), as_floats(grads_py[name])):
            assert abs(a - b) <= 1e-10, name


@pytest.mark.parametrize("engine", ARRAY_ENGINES)
def test_reference_run_equals_the_python_engine(engine, reference_run, tmp_path):
    engine_or_skip(engine)
    ref_out, ref_stdout = reference_run
    out = tmp_path / engine
    flags = ["--device", "cpu"] if engine == "torch" else []
    p = run_cli("train", "--engine", engine, "--dtype", "float64", *flags, "--out", out, check=True)
    losses, ref_losses = recorded_losses(out), recorded_losses(ref_out)
    assert len(losses) == len(ref_losses) == 1000
    assert max(abs(a - b) for a, b in zip(losses, ref_losses)) <= 1e-9
    assert printed_losses(p.stdout)[1] == "3.3660" and printed_losses(p.stdout)[1000] == "2.6497"
    assert printed_samples(p.stdout) == printed_samples(ref_stdout)
    assert printed_samples(p.stdout)[:5] == FIRST_FIVE


QUICK = ["--steps", "20", "--n-embd", "8", "--n-head", "2", "--batch-size", "3", "--eval-every", "0",
         "--num-samples", "3"]


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
    assert max(abs(x - y) for n in a for x, y in zip(as_floats(a[n]), as_floats(b[n]))) <= 1e-9
    assert printed_samples(resumed.stdout) == printed_samples(straight.stdout)
    # a python-trained run sampled, and a mixed run evaluated, by the array engine and by python
    outputs = {}
    for e in (engine, "python"):
        extra = flags if e == engine else []
        outputs[e] = (run_cli("sample", "--out", tmp_path / "py", "--engine", e, *extra, "--num", "5", "--seed", "1",
                              check=True).stdout,
                      run_cli("eval", "--out", tmp_path / "mixed", "--engine", e, *extra, check=True).stdout)
    assert outputs[engine] == outputs["python"]
