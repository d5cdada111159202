"""The numpy engine, measured: the reference run against the python engine, and two bigger models.

    MICROGPT_DATA_DIR=/work/shared/data python bench/bench_numpy.py reference     # ~1 minute
    MICROGPT_DATA_DIR=/work/shared/data python bench/bench_numpy.py names         # ~5 minutes
    MICROGPT_DATA_DIR=/work/shared/data python bench/bench_numpy.py shakespeare   # ~10 minutes

reference:   the seed's run (float64, batch 1). Each engine trains the first N steps in this one
             process, alternating, median of repeats; prints the per-step ratio textbook / numpy
             (and fused / numpy), then times the numpy engine's whole 1000-step run.
names:       4 layers, n_embd 64, 4 heads, block 16, batch 32, float32 (~200K parameters):
             tokens/s, and the validation loss (whole val split) after a time budget (5 minutes):
             the first 100 steps measure the speed, which sets the cosine schedule's length.
shakespeare: tinyshakespeare as one stream, 4 layers, n_embd 128, 4 heads, block 64, batch 12,
             float32, 2000 steps: the validation loss and the time taken.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from microgpt.config import EngineConfig, GPTConfig, RunConfig, TrainConfig, learning_rate
from microgpt.engines import get_engine
from microgpt.params import num_params
from microgpt.stages.pretrain import Run

DATA_DIR = os.environ.get("MICROGPT_DATA_DIR", "")


def setup(config, tc, path=None, dtype="float64"):
    """A run (data, config with the data's vocabulary, the seeded initial weights), and its model."""
    run = Run(RunConfig(data=path, model=config, train=tc, engine=EngineConfig(name="numpy", dtype=dtype),
                        quiet=True))
    return run, run.model.get_weights()


def step_times(model, ds, tc, steps):
    out = []
    for step in range(steps):
        seqs = ds.train_batch(step, tc.batch_size, tc.seed)
        t0 = time.perf_counter()
        model.train_step(seqs, learning_rate(tc, step), step + 1, tc)
        out.append(time.perf_counter() - t0)
    return out


def bench_reference(args):
    config, tc = GPTConfig(), TrainConfig()
    run, weights = setup(config, tc)
    ds, config = run.ds, run.config
    python, numpy_engine = get_engine("python"), get_engine("numpy")
    makers = {"textbook": lambda: python.Model(config, weights, EngineConfig(graph="textbook")),
              "fused": lambda: python.Model(config, weights, EngineConfig(graph="fused")),
              "numpy": lambda: numpy_engine.Model(config, weights, EngineConfig(name="numpy", dtype="float64"))}
    times = {k: [[] for _ in range(args.steps)] for k in makers}
    for r in range(args.repeats):
        for k in (list(makers) if r % 2 == 0 else list(makers)[::-1]):
            for i, dt in enumerate(step_times(makers[k](), ds, tc, args.steps)):
                times[k][i].append(dt)
    total = {k: sum(statistics.median(ts) for ts in times[k]) for k in makers}
    print(f"reference run, first {args.steps} steps, median of {args.repeats} repeats, float64, batch 1")
    for k in makers:
        print(f"  {k:>8}: {total[k] * 1e3:9.1f} ms  ({total[k] / args.steps * 1e3:.3f} ms/step)")
    print(f"  ratio textbook / numpy: {total['textbook'] / total['numpy']:.0f}x; "
          f"fused / numpy: {total['fused'] / total['numpy']:.1f}x")
    runs = []
    for _ in range(args.repeats):
        model = makers["numpy"]()
        t0 = time.perf_counter()
        losses = [model.train_step(ds.train_batch(s, 1, tc.seed), learning_rate(tc, s), s + 1, tc)
                  for s in range(tc.steps)]
        runs.append(time.perf_counter() - t0)
    print(f"  numpy engine, whole 1000-step reference run: {statistics.median(runs):.2f} s "
          f"(median of {args.repeats}); step 1 loss {losses[0]:.4f}, step 1000 loss {losses[-1]:.4f}")
    print(f"  textbook graph at its measured rate: ~{total['textbook'] / args.steps * 1000:.0f} s for 1000 steps")


def train_for(model, ds, tc, steps, t_start, log_every):
    tokens = 0
    for step in range(steps):
        seqs = ds.train_batch(step, tc.batch_size, tc.seed)
        loss = model.train_step(seqs, learning_rate(tc, step), step + 1, tc)
        tokens += sum(len(s) - 1 for s in seqs)
        if (step + 1) % log_every == 0:
            print(f"  step {step + 1:6d} | loss {loss:.4f} | {time.perf_counter() - t_start:6.1f} s", flush=True)
    return tokens


def schedule(args, batch_size, steps, data_mode="docs"):
    return TrainConfig(batch_size=batch_size, lr=args.lr, lr_schedule="cosine", warmup_steps=args.warmup, steps=steps,
                       weight_decay=args.weight_decay, dropout=args.dropout, data_mode=data_mode)


def describe(args):
    return (f"lr {args.lr} cosine, warm-up {args.warmup}, weight decay {args.weight_decay}, "
            f"dropout {args.dropout}")


def bench_names(args):
    config = GPTConfig(n_layer=4, n_embd=64, n_head=4, block_size=16)
    probe_tc = schedule(args, 32, 10 ** 9)
    run, weights = setup(config, probe_tc, dtype="float32")
    ds, probe = run.ds, run.model
    t0 = time.perf_counter()
    tokens = train_for(probe, ds, probe_tc, 100, t0, 10 ** 9)
    per_step = (time.perf_counter() - t0) / 100
    steps = int(args.budget / per_step)
    print(f"names, {num_params(config):,} parameters (4 layers, n_embd 64, 4 heads, block 16), batch 32, float32; "
          f"{describe(args)}")
    print(f"  first 100 steps: {per_step * 1e3:.1f} ms/step, {tokens / (per_step * 100):,.0f} tokens/s "
          f"-> {steps} steps for a {args.budget:.0f} s budget")
    run.model = get_engine("numpy").Model(run.config, weights, EngineConfig(name="numpy", dtype="float32"))
    t0 = time.perf_counter()
    tokens = train_for(run.model, ds, schedule(args, 32, steps), steps, t0, max(1, steps // 10))
    elapsed = time.perf_counter() - t0
    val = run.evaluate_split("val")["loss"]
    print(f"  trained {steps} steps in {elapsed:.1f} s ({tokens / elapsed:,.0f} tokens/s); "
          f"val loss {val:.4f} over all {len(ds.val)} validation names")


def bench_shakespeare(args):
    config = GPTConfig(n_layer=4, n_embd=128, n_head=4, block_size=64)
    tc = schedule(args, 12, args.steps, "stream")
    run, _ = setup(config, tc, os.path.join(DATA_DIR, "tinyshakespeare.txt"), dtype="float32")
    print(f"tinyshakespeare (stream), {num_params(run.config):,} parameters (4 layers, n_embd 128, 4 heads, "
          f"block 64), batch 12, float32; {describe(args)}")
    t0 = time.perf_counter()
    tokens = train_for(run.model, run.ds, tc, args.steps, t0, max(1, args.steps // 10))
    elapsed = time.perf_counter() - t0
    val = run.evaluate_split("val")["loss"]
    print(f"  trained {args.steps} steps in {elapsed:.1f} s ({tokens / elapsed:,.0f} tokens/s); "
          f"val loss {val:.4f} over the last {len(run.ds.val):,} characters")


# hyper-parameters found by a small search (see the README); each can be overridden by its flag
DEFAULTS = {"reference": dict(steps=30),
            "names": dict(lr=3e-3, warmup=200, weight_decay=0.1, dropout=0.2),
            "shakespeare": dict(steps=2000, lr=3e-3, warmup=100, weight_decay=0.0, dropout=0.0)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=list(DEFAULTS))
    ap.add_argument("--steps", type=int, help="reference: steps timed (30); shakespeare: steps trained (2000)")
    ap.add_argument("--repeats", type=int, default=3, help="reference: repeats per engine")
    ap.add_argument("--budget", type=float, default=300.0, help="names: training time in seconds (300)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--warmup", type=int)
    ap.add_argument("--weight-decay", type=float)
    ap.add_argument("--dropout", type=float)
    args = ap.parse_args()
    for k, v in DEFAULTS[args.which].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    {"reference": bench_reference, "names": bench_names, "shakespeare": bench_shakespeare}[args.which](args)


if __name__ == "__main__":
    main()
