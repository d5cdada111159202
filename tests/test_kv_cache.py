"""The engines' KV caches with a length per row (microgpt/engines/kv_cache.py) against the oracle:
the older generator(), one token per model call per row. float64, logits equal to 1e-10, for the
seed's architecture and nanochat's, with rows of different lengths prefilled in chunks (and two
at once), decoded together, freed in the middle and their slots reused."""

import random

import pytest

np = pytest.importorskip("numpy")

from helpers import FLOAT64  # noqa: E402

from microgpt import MicroGPTError  # noqa: E402
from microgpt.config import GPTConfig, arch_preset  # noqa: E402
from microgpt.engines import get_engine  # noqa: E402
from microgpt.params import init_weights  # noqa: E402

ARCHS = {"seed": {}, "nanochat": arch_preset("nanochat")}


def one_by_one(model, ids):
    """The logits after each token of ids, fed one per call through generator(1)."""
    gen = model.generator(1)
    return [np.array(gen.next_logits([t], p)[0]) for p, t in enumerate(ids)]


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("engine", ["numpy", "torch", "python"])
def test_rows_of_their_own_lengths_equal_token_by_token(engine, arch, monkeypatch):
    try:
        module = get_engine(engine)
    except MicroGPTError as e:
        pytest.skip(str(e))
    if engine == "python" and arch != "seed":
        pytest.skip("the python engine is the seed's architecture")
    if engine != "python":  # chunks of 3: a long prompt's later chunks attend to the cache before them
        monkeypatch.setattr(f"microgpt.engines.{engine}_engine.kv_cache.CHUNK", 3)
    config = GPTConfig(vocab_size=11, n_layer=2, n_embd=8, n_head=2, block_size=12, **ARCHS[arch])
    model = module.Model(config, init_weights(config, random.Random(3), std=0.5), FLOAT64[engine])
    rng = random.Random(0)
    seqs = [[rng.randrange(11) for _ in range(12)] for _ in range(5)]
    want = [one_by_one(model, s) for s in seqs]
    cache = model.kv_cache()
    prompt = [1, 7, 4, 4, 2]
    rows = [cache.add() for _ in seqs]
    for r, n in zip(rows, prompt):
        if r != 3:
            assert np.abs(np.asarray(cache.prefill(r, seqs[r][:n])) - want[r][n - 1]).max() <= 1e-10
    together = cache.prefill_rows([3, 0], [seqs[3][:4], seqs[0][1:5]])  # two rows, four tokens each, one pass
    assert all(np.abs(np.asarray(got) - want[r][p]).max() <= 1e-10 for got, r, p in zip(together, (3, 0), (3, 4)))
    prompt[0] = 5
    fed = dict(zip(rows, prompt))
    cache.free(rows[1])  # a row in the middle goes; a new one takes its slot
    new = cache.add()
    assert new == rows[1]
    assert np.abs(np.asarray(cache.prefill(new, seqs[1][:2])) - want[1][1]).max() <= 1e-10
    fed[new] = 2
    for i in range(5):  # in slot order (the cache sliced), or not (gathered)
        live = sorted(fed) if i % 2 else sorted(fed, key=lambda r: -fed[r])
        logits = np.asarray(cache.decode(live, [seqs[r][fed[r]] for r in live]))
        assert logits.shape == (len(live), 11)
        for r, row in zip(live, logits):
            assert np.abs(row - want[r][fed[r]]).max() <= 1e-10
            fed[r] += 1
    for r in rows:
        cache.free(r)
    assert cache.rows == 0 and cache.nbytes == 0
