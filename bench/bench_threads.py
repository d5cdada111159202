"""The numpy engine's BLAS threads: tokens/s of the README's 200K-parameter names model (4 layers,
n_embd 64, float32, batch 32) with 1, 2 (or more) threads, on a quiet machine and beside a busy
neighbour (`python -c 'while 1: pass'`, one core kept busy).

OpenBLAS's threads spin while waiting for each other, so a thread whose core is taken stalls
every matrix product: that is the slowdown this measures. Each figure is the median of several
rounds, the settings interleaved within a round (shared machines are noisy: compare ratios).

    python bench/bench_threads.py                 # threads 1 and 2, quiet and busy, 3 rounds of 6 s
    python bench/bench_threads.py --threads 1 2 4 --rounds 5 --seconds 10
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(threads, seconds):
    """Train the 200K model for `seconds` (after a warm-up) with `threads` BLAS threads; print tok/s."""
    import random

    from microgpt.config import EngineConfig, GPTConfig, TrainConfig
    from microgpt.data.text import read_data, split_docs
    from microgpt.engines.numpy_engine.engine import Model
    from microgpt.params import init_weights
    docs = split_docs(read_data().text)
    chars = sorted(set("".join(docs)))
    bos = len(chars)
    config = GPTConfig(vocab_size=bos + 1, n_layer=4, n_embd=64, n_head=4, block_size=16)
    model = Model(config, init_weights(config, random.Random(0)),
                  EngineConfig(name="numpy", dtype="float32", threads=threads))
    tc, rng = TrainConfig(lr=3e-3, batch_size=32), random.Random(1)

    def batch():
        seqs = [[bos] + [chars.index(c) for c in rng.choice(docs)] + [bos] for _ in range(tc.batch_size)]
        return [s[:config.block_size + 1] for s in seqs]
    for t in range(1, 6):  # warm-up
        model.train_step(batch(), tc.lr, t, tc)
    tokens, t, start = 0, 6, time.perf_counter()
    while time.perf_counter() - start < seconds:
        seqs = batch()
        model.train_step(seqs, tc.lr, t, tc)
        tokens += sum(len(s) - 1 for s in seqs)
        t += 1
    print(tokens / (time.perf_counter() - start))


def measure(threads, seconds, busy):
    """tokens/s of one worker process, with a busy neighbour process beside it or not."""
    neighbour = subprocess.Popen([sys.executable, "-c", "while 1: pass"]) if busy else None
    try:
        env = dict(os.environ, PYTHONPATH=ROOT)
        env.pop("OMP_NUM_THREADS", None)  # (the tests' setting: here the engine alone decides)
        out = subprocess.run([sys.executable, __file__, "--worker", str(threads), "--seconds", str(seconds)],
                             capture_output=True, text=True, env=env, check=True).stdout
        return float(out.split()[-1])
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        return worker(args.worker, args.seconds)
    settings = [(n, busy) for n in args.threads for busy in (False, True)]
    results = {s: [] for s in settings}
    for r in range(args.rounds):
        for s in settings:
            results[s].append(measure(s[0], args.seconds, s[1]))
        print(f"round {r + 1}: " + ", ".join(f"{n}t {'busy' if b else 'quiet'} {results[(n, b)][-1]:,.0f}"
                                             for n, b in settings), flush=True)
    print(f"\n{os.cpu_count()} cores; tokens/s, median of {args.rounds} rounds of {args.seconds:g} s")
    print("threads | quiet   | busy neighbour | busy / quiet")
    for n in args.threads:
        q, b = statistics.median(results[(n, False)]), statistics.median(results[(n, True)])
        print(f"{n:7d} | {q:7,.0f} | {b:14,.0f} | {b / q:.2f}")


if __name__ == "__main__":
    main()
