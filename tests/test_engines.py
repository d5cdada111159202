"""The efficiency ladder is one model: every array engine against the python engine, in float64.

Adding an engine is adding its name to ENGINES (each test takes the `engine` fixture); an
engine whose module (or library) is not installed is skipped. The python engine (fused graph, itself checked against the seed's textbook
graph in test_fused.py) is the yardstick:
  * gradients at the shared seeded init agree to 1e-10, with and without padding;
  * the seed's reference run (1000 steps, Adam, linear decay) gives every step's loss to 1e-9,
    and then the same samples from the same random stream (through the engine's KV cache);
  * eval losses and the KV-cache logits of generation agree; the optimizer state survives a
    checkpoint, so a resumed run continues exactly.
"""

import random

import pytest

from microgpt import MicroGPTError, checkpoint
from microgpt.config import GPTConfig, TrainConfig, learning_rate
from microgpt.data import load_dataset
from microgpt.engines import get_engine
from microgpt.init import init_weights
from microgpt.sample import generate
from microgpt.tokenizer import CharTokenizer

np = pytest.importorskip("numpy")

ENGINES = ["numpy", "torch"]
GRAD_TOL, LOSS_TOL = 1e-10, 1e-9


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matrices: a second BLAS/OpenMP thread costs more than it gives (and CI has 2 cores)."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=ENGINES)
def engine(request):
    """Each engine name in turn; skipped when its module (or library) is not installed."""
    try:
        get_engine(request.param)
    except MicroGPTError as e:
        pytest.skip(str(e))
    return request.param


def make_model(engine, config, weights):
    """The engine's Model in float64 on the CPU."""
    options = {"engine": engine, "graph": "fused", "dtype": "float64", "device": "cpu", "compile": False}
    return get_engine(engine).Model(config, weights, options)


def python_model(config, weights):
    return get_engine("python").Model(config, weights, {"graph": "fused"})


def max_diff(a, b):
    """Largest |a - b| over {name: matrix} dicts (rows of floats or numpy arrays)."""
    assert set(a) == set(b)
    return max(float(np.max(np.abs(np.asarray(a[n], dtype=np.float64) - np.asarray(b[n], dtype=np.float64))))
               for n in a)


def reference_setup(config=None):
    """The seed's order on one random stream: shuffle the names, then the init; returns what sampling continues."""
    rng = random.Random(42)
    config = config or GPTConfig()
    ds = load_dataset(None, "docs", config.block_size, 0.1, rng, quiet=True)
    config.vocab_size = ds.tokenizer.vocab_size
    return config, ds, init_weights(config, rng), rng


# ---------------------------------------------------------------- gradients at init

CASES = {
    "reference-one-name": (dict(), 1),                               # the seed's model and step 1's batch
    "two-layers-padded-batch": (dict(n_layer=2, n_embd=16, n_head=4), 7),  # names of several lengths: padding
    "truncated-names": (dict(n_layer=1, n_embd=8, n_head=2, block_size=5), 6),  # names cut at block_size
}


@pytest.mark.parametrize("case", list(CASES))
def test_gradients_at_init_equal_the_python_engine(engine, case, names_path):
    sizes, batch = CASES[case]
    config, ds, weights, _ = reference_setup(GPTConfig(**sizes))
    seqs = ds.train_batch(3, batch, 42)
    if batch > 1:
        assert len({len(s) for s in seqs}) > 1  # the batch really is padded
    loss_py, grads_py = python_model(config, weights).loss_and_grads(seqs)
    model = make_model(engine, config, weights)
    loss, grads = model.loss_and_grads(seqs)
    assert abs(loss - loss_py) <= GRAD_TOL
    assert max_diff(grads, grads_py) <= GRAD_TOL
    assert max_diff(model.get_weights(), weights) == 0.0  # loss_and_grads leaves the weights alone


# ---------------------------------------------------------------- the reference run

@pytest.fixture(scope="module")
def python_reference_run(names_path):
    """The seed's run on the python engine: losses of all 1000 steps, final weights, 20 samples (~6 s)."""
    return train_reference(lambda config, weights: python_model(config, weights))


def train_reference(make):
    config, ds, weights, rng = reference_setup()
    tc = TrainConfig()
    model = make(config, weights)
    losses = [model.train_step(ds.train_batch(step, 1, tc.seed), learning_rate(tc, step), step + 1, tc)
              for step in range(tc.steps)]
    samples = [generate(model, ds.tokenizer, rng, config.block_size, 0.5) for _ in range(20)]
    return losses, model.get_weights(), samples


def test_python_engine_is_the_seeds_reference_run(python_reference_run):
    losses, _, samples = python_reference_run
    assert f"{losses[0]:.4f}" == "3.3660" and f"{losses[-1]:.4f}" == "2.6497"
    assert samples[:5] == ["kamon", "ann", "karai", "jaire", "vialan"]


def test_reference_run_losses_equal_the_python_engine(engine, python_reference_run):
    losses_py, weights_py, samples_py = python_reference_run
    losses, weights, samples = train_reference(lambda config, w: make_model(engine, config, w))
    assert len(losses) == 1000
    assert max(abs(a - b) for a, b in zip(losses, losses_py)) <= LOSS_TOL
    assert max_diff(weights, weights_py) <= LOSS_TOL
    assert samples == samples_py


def test_batched_training_equals_the_python_engine(engine, names_path):
    """Batches of 4 padded names, 2 layers, 15 Adam steps: the masked mean over real tokens throughout."""
    config, ds, weights, _ = reference_setup(GPTConfig(n_layer=2, n_embd=16, n_head=4))
    tc = TrainConfig(steps=15, batch_size=4, lr=0.02)
    py, model = python_model(config, weights), make_model(engine, config, weights)
    for step in range(tc.steps):
        seqs = ds.train_batch(step, tc.batch_size, tc.seed)
        lr = learning_rate(tc, step)
        assert abs(model.train_step(seqs, lr, step + 1, tc) - py.train_step(seqs, lr, step + 1, tc)) <= LOSS_TOL
    assert max_diff(model.get_weights(), py.get_weights()) <= LOSS_TOL
    assert max_diff(model.get_optimizer_state()["v"], py.get_optimizer_state()["v"]) <= LOSS_TOL


# ---------------------------------------------------------------- evaluation, generation, resume

def test_eval_loss_and_kv_cache_logits_equal_the_python_engine(engine):
    config = GPTConfig(vocab_size=7, n_layer=2, n_embd=8, n_head=2, block_size=6)
    weights = init_weights(config, random.Random(3), std=0.5)
    py, model = python_model(config, weights), make_model(engine, config, weights)
    seqs = [[6, 1, 2, 3, 6], [6, 4, 6], [6, 0, 1, 2, 3, 4, 5]]
    total_py, n_py = py.eval_loss(seqs)
    total, n = model.eval_loss(seqs)
    assert n == n_py == 12
    assert abs(total - total_py) <= GRAD_TOL
    gen_py, gen = py.generator(), model.generator()
    for pos, tok in enumerate([6, 0, 5, 5, 2, 1]):  # block_size positions, one token at a time
        a, b = gen.next_logits(tok, pos), gen_py.next_logits(tok, pos)
        assert isinstance(a, list) and len(a) == config.vocab_size
        assert max(abs(x - y) for x, y in zip(a, b)) <= GRAD_TOL


def test_resume_through_a_checkpoint_continues_exactly(engine, tmp_path):
    """3 steps, save, load into a fresh model, 3 more == 6 straight: the moments and Adam's step count carry over."""
    config = GPTConfig(vocab_size=7, n_layer=1, n_embd=8, n_head=2, block_size=6)
    weights = init_weights(config, random.Random(5))
    tc = TrainConfig(steps=6)
    batches = [[[6, 1, 2, 3, 6], [6, (s % 5) + 1, 6]] for s in range(6)]
    straight = make_model(engine, config, weights)
    for s in range(6):
        straight.train_step(batches[s], learning_rate(tc, s), s + 1, tc)
    first = make_model(engine, config, weights)
    for s in range(3):
        first.train_step(batches[s], learning_rate(tc, s), s + 1, tc)
    checkpoint.save(str(tmp_path), weights=first.get_weights(), optimizer=first.get_optimizer_state(),
                    config=config, train=tc, tokenizer=CharTokenizer("abcdef"), state={"step": 3},
                    dtype=first.safetensors_dtype)
    ckpt = checkpoint.load(str(tmp_path))
    resumed = make_model(engine, config, ckpt.weights)
    resumed.set_optimizer_state(ckpt.optimizer)
    for s in range(3, 6):
        resumed.train_step(batches[s], learning_rate(tc, s), s + 1, tc)
    assert max_diff(resumed.get_weights(), straight.get_weights()) <= 1e-14
    assert max_diff(resumed.get_optimizer_state()["m"], straight.get_optimizer_state()["m"]) <= 1e-14
