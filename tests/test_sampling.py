"""The array policy (sampling.choose_rows, the numpy and torch engines' path) against the plain-float one
(sampling.choose, the python engine's: the seed's arithmetic): for every mix of settings in one batch,
the same tokens from the same random streams, the same log-probabilities and the same likeliest
alternatives, ties broken by token id."""

import random
import types

import pytest

np = pytest.importorskip("numpy")

from microgpt.sampling import choose, choose_rows  # noqa: E402


def settings(rng, V):
    top_logprobs = rng.choice([0, 0, 1, 5])
    return types.SimpleNamespace(
        temperature=rng.choice([0, 0.5, 1.0, 1.7]), top_k=rng.choice([0, 1, 3, V - 1, V, V + 5]),
        top_p=rng.choice([1.0, 1.0, 0.9, 0.5, 0.05]), logprobs=top_logprobs > 0 or rng.random() < 0.3,
        top_logprobs=top_logprobs, rng=random.Random(rng.randrange(10 ** 9)))


@pytest.mark.parametrize("V", [7, 65, 700])
def test_choose_rows_draws_what_choose_draws(V):
    rng = random.Random(V)
    for trial in range(40):
        R = rng.choice([1, 2, 5, 32])
        # logits on a coarse grid, so rows hold ties (broken by token id) at every rank
        logits = np.array([[rng.randrange(-40, 40) / 8 for _ in range(V)] for _ in range(R)])
        rows = [settings(rng, V) for _ in range(R)]
        twins = [types.SimpleNamespace(**{**vars(s), "rng": random.Random()}) for s in rows]
        for s, t in zip(rows, twins):
            t.rng.setstate(s.rng.getstate())
        got = choose_rows(logits, rows)
        want = [choose(list(map(float, row)), t) for row, t in zip(logits, twins)]
        for (token, logprob, top), (w_token, w_logprob, w_top), s in zip(got, want, rows):
            assert token == w_token, (trial, vars(s))
            assert (logprob is None) == (w_logprob is None) and (logprob is None or abs(logprob - w_logprob) < 1e-9)
            assert [t for t, _ in top] == [t for t, _ in w_top], (trial, vars(s))
            assert all(abs(a - b) < 1e-9 for (_, a), (_, b) in zip(top, w_top))
        assert [s.rng.random() for s in rows] == [t.rng.random() for t in twins]  # (as many draws each)


@pytest.mark.parametrize("k", [0, 1, 5, 20, 21, 99, 100, 130])
def test_the_largest_are_the_stable_sorts_first_k(k):
    from microgpt.sampling import _largest
    rng = np.random.default_rng(k)
    x = rng.integers(-5, 5, size=(16, 100)).astype(float)  # (many ties)
    x[3] = 1.0  # (a row of one value)
    assert (_largest(x, k) == np.argsort(-x, axis=-1, kind="stable")[:, :k]).all()
    x[5, 7] = np.nan
    assert (_largest(x, k) == np.argsort(-x, axis=-1, kind="stable")[:, :k]).all()
