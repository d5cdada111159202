"""What choosing the next tokens costs per batched step (sampling.choose_rows), by vocabulary size, beside
the model step it follows; and the likeliest-k search it uses against sorting whole rows.

    python bench/bench_sampling.py            # ~20 seconds

32 rows of random float64 logits (no model), one thread, min of 5 repeats. Settings, each for every row:
greedy with 5 top_logprobs (what bench_serve.py and the learners' page ask), temperature 1, top_k 40,
top_p 0.9. Then sampling._largest (k passes of argmax) against np.argsort(-x, kind="stable")[:, :k],
the full stable sort it replaced for the top_logprobs (the same ids: tests/test_sampling.py).
"""

import os
import random
import sys
import timeit
import types

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np

from microgpt.sampling import _largest, choose_rows

ROWS = 32
SETTINGS = {"greedy, 5 logprobs": dict(temperature=0, logprobs=True, top_logprobs=5),
            "temperature 1": dict(temperature=1.0), "top_k 40": dict(temperature=0.8, top_k=40),
            "top_p 0.9": dict(temperature=0.8, top_p=0.9)}


def us(f, number=20):
    return min(timeit.repeat(f, number=number, repeat=5)) / number * 1e6


def main():
    for V in (65, 512, 4096, 32768):
        x = np.random.default_rng(V).standard_normal((ROWS, V))
        cells = []
        for name, kw in SETTINGS.items():
            rows = [types.SimpleNamespace(**{"top_k": 0, "top_p": 1.0, "logprobs": False, "top_logprobs": 0, **kw,
                                             "rng": random.Random(r)}) for r in range(ROWS)]
            cells.append(f"{name} {us(lambda: choose_rows(x, rows)):,.0f} us")  # noqa: B023 (timed at once)
        print(f"vocab {V:>6}, {ROWS} rows: " + "; ".join(cells))
        mine, sort = us(lambda: _largest(x, 5)), us(lambda: np.argsort(-x, axis=-1, kind="stable")[:, :5])  # noqa: B023
        print(f"    the 5 likeliest: argmax passes {mine:,.0f} us, a full sort {sort:,.0f} us: {sort / mine:.1f}x")


if __name__ == "__main__":
    main()
