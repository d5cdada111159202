"""Batched generation against one prompt at a time: tokens generated per second, per engine.

    MICROGPT_DATA_DIR=../shared/data python bench/bench_generate.py                 # ~1 minute
    MICROGPT_DATA_DIR=../shared/data python bench/bench_generate.py --out runs/add  # a trained chat run

Evaluation and RL sample many answers at once: generate.generate prefills every row's prompt and
then feeds all rows one token per model call (a KV-cache row each, at its own position). This
answers the same prompts both ways -- batch 1 (one prompt after another) and batch B --
alternating, median of repeats, and prints the ratio. Greedy decoding, so both ways produce the same tokens (checked).
"""

import argparse
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from microgpt.config import EngineConfig, GPTConfig
from microgpt.engines import get_engine
from microgpt.generate import generate
from microgpt.params import init_weights


def timed(model, prompts, block_size, batch):
    t0 = time.perf_counter()
    out = []
    for i in range(0, len(prompts), batch):
        out += generate(model, prompts[i:i + batch], random.Random(0), block_size, None, 0.0)
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="a trained run to use (default: a random 4-layer, n_embd 64 model)")
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="python,numpy,torch")
    args = ap.parse_args()
    if args.out:
        from microgpt import checkpoint
        ck = checkpoint.load(args.out, with_optimizer=False)
        config, weights = ck.config, ck.weights
    else:
        config = GPTConfig(vocab_size=40, n_layer=4, n_embd=64, n_head=4, block_size=32)
        weights = init_weights(config, random.Random(0))
    rng = random.Random(1)
    prompts = [[rng.randrange(config.vocab_size) for _ in range(rng.randint(4, 12))] for _ in range(args.prompts)]
    print(f"{args.prompts} prompts of 4-12 tokens, each continued to the end of the context (block "
          f"{config.block_size}); {config.n_layer} layers, n_embd {config.n_embd}; greedy; median of {args.repeats}")
    print(f"{'engine':>8} {'batch 1 tok/s':>14} {f'batch {args.batch} tok/s':>16} {'ratio':>6}")
    for name in args.engines.split(","):
        dtype = {"python": None, "numpy": "float32", "torch": "float32"}[name]
        try:
            model = get_engine(name).Model(config, weights, EngineConfig(name=name, dtype=dtype,
                                                                         device="cpu" if name == "torch" else None))
        except Exception as e:  # an engine whose extra is not installed
            print(f"{name:>8} skipped ({e})")
            continue
        n = args.prompts if name != "python" else max(8, args.prompts // 8)  # the python engine is slow
        rates = {1: [], args.batch: []}
        outs = {}
        for r in range(args.repeats):
            for b in ((1, args.batch) if r % 2 == 0 else (args.batch, 1)):
                secs, outs[b] = timed(model, prompts[:n], config.block_size, b)
                rates[b].append(sum(len(o) for o in outs[b]) / secs)
        assert outs[1] == outs[args.batch], "batched and one-at-a-time generation differ"
        one, many = statistics.median(rates[1]), statistics.median(rates[args.batch])
        print(f"{name:>8} {one:>14,.0f} {many:>16,.0f} {many / one:>6.1f}x", flush=True)


if __name__ == "__main__":
    main()
