"""The modern parts, one at a time, at equal wall-clock: the seed's architecture with Adam; each of
rotary positions, QK-norm, ReLU^2, a final norm and a soft cap alone; all of them (--arch
nanochat); all of them with Muon. Validation loss and bits per byte, ms per step, steps done.

    MICROGPT_DATA_DIR=../shared/data python bench/bench_modern.py                       # ~60 minutes
    MICROGPT_DATA_DIR=../shared/data python bench/bench_modern.py --budget 20 --data names \\
        --only seed,rope,all,all+muon                                                     # ~2 minutes
    ... --plot modern.png     # the validation curves against training seconds (matplotlib)
    taskset -c 0 python bench/bench_modern.py --data names --json names.json &        # a core each (~30 min)
    taskset -c 1 python bench/bench_modern.py --data shakespeare --json shakespeare.json; wait
    python bench/bench_modern.py --plot-from names.json,shakespeare.json --plot modern.png

Data sets: names (the README's 200K-parameter model: 4 layers, n_embd 64, 4 heads, block 16,
batch 32, dropout 0.2: it sees each name ~20 times in 180 s) and tinyshakespeare (4 layers, n_embd
128, 4 heads, block 64, batch 12, stream, no dropout: under 2 passes). The same recipe for every
configuration: lr 3e-3 cosine with warm-up, weight decay 0.1; Muon's matrices at --muon-lr.
"Equal wall-clock": the speed of every configuration is measured first in this one process
(alternating, median of repeats); each then trains the steps its speed allows in --budget
seconds, its cosine schedule spanning them. The validation loss is taken over the whole
held-out split at the end (and over --curve-docs of it at 8 points along the way, for the curves).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from microgpt.config import EngineConfig, GPTConfig, RunConfig, TrainConfig, arch_preset, learning_rate
from microgpt.params import num_params
from microgpt.stages.pretrain import Run

NANOCHAT = arch_preset("nanochat")
CONFIGS = {  # name: (model fields, optimizer)
    "seed": ({}, "adam"),
    "rope": ({"pos": "rope"}, "adam"),
    "qk-norm": ({"qk_norm": True}, "adam"),
    "relu2": ({"mlp": "relu2"}, "adam"),
    "final-norm": ({"final_norm": True}, "adam"),
    "softcap": ({"softcap": NANOCHAT["softcap"]}, "adam"),
    "all": (NANOCHAT, "adam"),
    "all+muon": (NANOCHAT, "muon"),
}
DATA = {  # name: (file, model, batch size, data mode, warm-up steps, dropout)
    "names": ("names.txt", dict(n_layer=4, n_embd=64, n_head=4, block_size=16), 32, "docs", 100, 0.2),
    "shakespeare": ("tinyshakespeare.txt", dict(n_layer=4, n_embd=128, n_head=4, block_size=64), 12, "stream", 100,
                    0.0),
}


def make_run(args, data, name, steps, out):
    file, size, batch, mode, warmup, dropout = DATA[data]
    fields, optimizer = CONFIGS[name]
    cfg = RunConfig(out=out, data=os.path.join(args.data_dir, file), model=GPTConfig(**size, **fields),
                    train=TrainConfig(steps=steps, batch_size=batch, lr=args.lr, lr_schedule="cosine",
                                      warmup_steps=min(warmup, steps // 10), weight_decay=args.weight_decay,
                                      dropout=dropout,
                                      data_mode=mode, optimizer=optimizer, muon_lr=args.muon_lr),
                    engine=EngineConfig(name=args.engine, dtype=args.dtype, device=args.device),
                    eval_every=0, quiet=True)
    return Run(cfg)  # (nothing is written: this script drives the steps itself)


def timed_steps(run, start, n):
    """Seconds per step of steps start .. start + n - 1."""
    tc = run.cfg.train
    t0 = time.perf_counter()
    for s in range(start, start + n):
        run.model.train_step(run.ds.train_batch(s, tc.batch_size, tc.seed), learning_rate(tc, s), s + 1, tc)
    return (time.perf_counter() - t0) / n


def train(run, steps, curve_docs):
    """Train `steps` steps; -> (training seconds, [(seconds, step, val loss on curve_docs)])."""
    seconds, curve = 0.0, []
    marks = {max(1, round(steps * k / 8)) for k in range(1, 9)}
    for s in range(steps):
        seconds += timed_steps(run, s, 1)
        if s + 1 in marks:
            curve.append((seconds, s + 1, run.evaluate_split("val", curve_docs)["loss"]))
    return seconds, curve


def bench(args, data, names, tmp):
    probes = {n: make_run(args, data, n, 10 ** 6, os.path.join(tmp, f"probe-{data}-{n}")) for n in names}
    times = {n: [] for n in names}
    for r in range(args.repeats):  # 1) the speed of each, alternating, in this process
        for n in (names if r % 2 == 0 else names[::-1]):
            times[n].append(timed_steps(probes[n], r * args.probe_steps, args.probe_steps))
    per_step = {n: statistics.median(t) for n, t in times.items()}
    del probes
    _, size, batch, _, _, dropout = DATA[data]
    print(f"\n{data}: {size['n_layer']} layers, n_embd {size['n_embd']}, {size['n_head']} heads, block "
          f"{size['block_size']}, batch {batch}, dropout {dropout}; {args.engine} {args.dtype or ''}; "
          f"budget {args.budget:g} s each")
    print(f"{'config':>10} {'params':>8} {'ms/step':>8} {'steps':>6} {'train s':>8} {'val loss':>9} {'val bpb':>8}")
    results = {}
    for n in names:  # 2) each for the steps its speed allows, then the whole validation split
        steps = max(1, int(args.budget / per_step[n]))
        run = make_run(args, data, n, steps, os.path.join(tmp, f"{data}-{n}"))
        seconds, curve = train(run, steps, args.curve_docs)
        val = run.evaluate_split("val")
        results[n] = dict(ms=per_step[n] * 1e3, steps=steps, seconds=seconds, curve=curve, **val)
        print(f"{n:>10} {num_params(run.config):>8,} {per_step[n] * 1e3:>8.2f} {steps:>6} {seconds:>8.1f} "
              f"{val['loss']:>9.4f} {val['bpb']:>8.4f}", flush=True)
    if "all" in results and "all+muon" in results:  # Muon's cost per step beside its gain per step
        a, m = results["all"], results["all+muon"]
        step = min(a["steps"], m["steps"])
        at = lambda r: min(r["curve"], key=lambda c: abs(c[1] - step))
        print(f"Muon vs Adam (all parts): {m['ms'] - a['ms']:+.2f} ms/step ({m['ms'] / a['ms'] - 1:+.0%}); val "
              f"(curve docs) near step {step}: {at(m)[2]:.4f} (Muon, step {at(m)[1]}) vs {at(a)[2]:.4f} (Adam, step "
              f"{at(a)[1]})")
    return results


def plot(all_results, path):
    from microgpt.pictures import require_matplotlib
    Figure = require_matplotlib()
    fig = Figure(figsize=(6 * len(all_results), 4.2), layout="constrained")
    axes = fig.subplots(1, len(all_results), squeeze=False)[0]
    for ax, (data, results) in zip(axes, all_results.items()):
        for n, r in results.items():
            ax.plot([c[0] for c in r["curve"]], [c[2] for c in r["curve"]], marker="o", ms=3,
                    lw=2.2 if n.startswith("all") or n == "seed" else 1.2, label=f"{n} ({r['loss']:.3f})")
        ax.set_xlabel("training seconds")
        ax.set_ylabel("validation loss (nats / token)")
        ax.set_title(f"{data}: the modern parts at equal wall-clock", fontsize=10)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=180.0, help="training seconds per configuration (default 180)")
    ap.add_argument("--only", default=",".join(CONFIGS), help=f"configurations, of: {','.join(CONFIGS)}")
    ap.add_argument("--data", default="names,shakespeare", help="names, shakespeare or both (default)")
    ap.add_argument("--data-dir", default=os.environ.get("MICROGPT_DATA_DIR", ""))
    ap.add_argument("--engine", default="numpy")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default=None)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--muon-lr", type=float, default=0.02)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--probe-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--curve-docs", type=int, default=500, help="validation sequences per curve point (0: all)")
    ap.add_argument("--plot", default=None, help="also draw the validation curves into this PNG")
    ap.add_argument("--json", default=None, help="also write the results (with the curves) into this file")
    ap.add_argument("--plot-from", default=None, metavar="FILES",
                    help="no training: draw --plot from these --json files (comma-separated)")
    args = ap.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in CONFIGS] + [d for d in args.data.split(",") if d not in DATA]
    if unknown:
        ap.error(f"unknown configuration or data set {unknown[0]!r}")
    if args.plot_from:
        if not args.plot:
            ap.error("--plot-from needs --plot PNG")
        results = {}
        for path in args.plot_from.split(","):
            try:
                with open(path) as f:
                    results.update(json.load(f))
            except (OSError, ValueError) as e:
                ap.error(f"--plot-from {path}: cannot read it as a --json file of this script ({e})")
        return plot(results, args.plot)
    tmp = tempfile.mkdtemp(prefix="bench-modern-")
    results = {d: bench(args, d, names, tmp) for d in args.data.split(",")}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
