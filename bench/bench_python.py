"""Textbook vs fused graph of the python engine, on the reference run's first N steps.

Both graphs run in this one process, alternating, from the same initial weights; each step is
timed in every repeat and the median taken, so a noisy shared machine shows in both equally.
Prints per-step times and ratios (textbook / fused), the graph size (nodes, edges) per step
of each graph, the loss agreement, and the peak memory of one training step.

    MICROGPT_DATA_DIR=/work/shared/data python bench/bench_python.py --steps 30 --repeats 3
    MICROGPT_DATA_DIR=/work/shared/data pypy3 bench/bench_python.py --steps 30 --repeats 3
"""

import argparse
import gc
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from microgpt.config import EngineConfig, RunConfig, learning_rate
from microgpt.engines.python.engine import GRAPHS as GRAPH_MODULES
from microgpt.engines.python.engine import Model
from microgpt.stages.pretrain import Run

GRAPHS = list(GRAPH_MODULES)  # textbook, fused


def setup(data):
    """The reference run's data, config and initial weights: one random stream, the seed's order."""
    run = Run(RunConfig(data=data, quiet=True))
    return run.config, run.cfg.train, run.ds, run.model.get_weights()


def run_steps(graph, config, tc, ds, weights, steps, stats=False):
    """Train `steps` steps from `weights`; returns per-step (seconds, loss, (graph nodes, edges))."""
    model = Model(config, weights, EngineConfig(graph=graph, stats=stats))
    out = []
    for step in range(steps):
        seqs = ds.train_batch(step, tc.batch_size, tc.seed)
        lr = learning_rate(tc, step)
        t0 = time.perf_counter()
        loss = model.train_step(seqs, lr, step + 1, tc)
        info = model.step_info()
        out.append((time.perf_counter() - t0, loss, (info.get("graph_nodes"), info.get("graph_edges"))))
    return out


def peak_memory(graph, config, tc, ds, weights, steps):
    """Peak bytes allocated during `steps` training steps (tracemalloc; None where unsupported)."""
    try:
        import tracemalloc
        tracemalloc.start()
    except (ImportError, RuntimeError, AttributeError):
        return None
    try:
        model = Model(config, weights, EngineConfig(graph=graph))
        tracemalloc.reset_peak() if hasattr(tracemalloc, "reset_peak") else None
        base = tracemalloc.get_traced_memory()[0]
        for step in range(steps):
            model.train_step(ds.train_batch(step, tc.batch_size, tc.seed), learning_rate(tc, step),
                             step + 1, tc)
        return tracemalloc.get_traced_memory()[1] - base
    except Exception:
        return None
    finally:
        tracemalloc.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="reference-run steps to time (default 30)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per graph, alternating (default 3)")
    ap.add_argument("--mem-steps", type=int, default=5, help="steps traced for peak memory (0: skip)")
    ap.add_argument("--data", default=None, help="names.txt (default: $MICROGPT_DATA_DIR or the cache)")
    args = ap.parse_args()
    config, tc, ds, weights = setup(args.data)
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"{impl}: reference run, first {args.steps} steps, {args.repeats} repeats per graph (median)")

    # graph sizes and losses, untimed
    sizes = {g: run_steps(g, config, tc, ds, weights, args.steps, stats=True) for g in GRAPHS}
    times = {g: [[] for _ in range(args.steps)] for g in GRAPHS}
    for r in range(args.repeats):
        for g in (GRAPHS if r % 2 == 0 else GRAPHS[::-1]):  # alternate which graph goes first
            gc.collect()
            for i, (dt, _, _) in enumerate(run_steps(g, config, tc, ds, weights, args.steps)):
                times[g][i].append(dt)
    med = {g: [statistics.median(ts) for ts in times[g]] for g in GRAPHS}

    print(f"{'step':>4} {'tokens':>6} {'textbook ms':>11} {'fused ms':>8} {'ratio':>6} "
          f"{'textbook nodes/edges':>21} {'fused nodes/edges':>18} {'|loss diff|':>11}")
    max_diff = 0.0
    for i in range(args.steps):
        (_, lt, (nt, et)), (_, lf, (nf, ef)) = sizes["textbook"][i], sizes["fused"][i]
        diff = abs(lt - lf)
        max_diff = max(max_diff, diff)
        n_tok = len(ds.train_batch(i, tc.batch_size, tc.seed)[0]) - 1
        print(f"{i + 1:>4} {n_tok:>6} {med['textbook'][i] * 1e3:>11.1f} {med['fused'][i] * 1e3:>8.2f} "
              f"{med['textbook'][i] / med['fused'][i]:>6.1f} {nt:>10,}/{et:<10,} {nf:>8,}/{ef:<9,} {diff:>11.1e}")
    tot = {g: sum(med[g]) for g in GRAPHS}
    nodes = {g: sum(s[2][0] for s in sizes[g]) / args.steps for g in GRAPHS}
    edges = {g: sum(s[2][1] for s in sizes[g]) / args.steps for g in GRAPHS}
    print(f"\ntotal over {args.steps} steps: textbook {tot['textbook']:.2f} s, fused {tot['fused']:.3f} s, "
          f"ratio textbook/fused {tot['textbook'] / tot['fused']:.1f}x")
    print(f"per 1000 steps at this rate: textbook ~{tot['textbook'] / args.steps * 1000:.0f} s, "
          f"fused ~{tot['fused'] / args.steps * 1000:.1f} s")
    print(f"mean per step: textbook {nodes['textbook']:,.0f} nodes / {edges['textbook']:,.0f} edges, "
          f"fused {nodes['fused']:,.0f} nodes / {edges['fused']:,.0f} edges "
          f"({nodes['textbook'] / nodes['fused']:.0f}x fewer nodes, "
          f"{edges['textbook'] / edges['fused']:.1f}x fewer edges)")
    print(f"max |loss difference| over the steps: {max_diff:.1e}")
    if args.mem_steps:
        for g in GRAPHS:
            peak = peak_memory(g, config, tc, ds, weights, min(args.mem_steps, args.steps))
            print(f"peak memory of a training step, {g}: " +
                  (f"{peak / 2 ** 20:.1f} MiB (tracemalloc, first {args.mem_steps} steps)" if peak
                   else "n/a (no tracemalloc here)"))
    try:
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"process max RSS: {rss / 1024:.0f} MiB")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
