"""Loss curves of one or more runs, overlaid: what `microgpt plot RUN [RUN ...]` draws.

Panels, top to bottom, each only where some run has the numbers:
  loss       train loss (the mean over each logged window) as a line, validation loss as
             points joined by a dashed line, in nats per token;
  bits/byte  validation bits per byte (`val_bpb`), the number that compares tokenizers;
  RL         mean reward and pass@k of reinforcement-learning runs;
  lr         the learning rate, on its own axis so its scale does not squash the losses.
All panels share the x axis: step, training tokens (`tokens`) or time (`elapsed`).
"""

import math
import os

from microgpt.errors import MicroGPTError
from microgpt.pictures import require_matplotlib, save_figure
from microgpt.train.metrics import cumulative_elapsed, read_metrics  # (also what curves.read_metrics means)

MAX_POINTS = 150       # at most this many train-loss windows per curve
MIN_WINDOW_STEPS = 10  # and each window the mean of at least this many steps (see train_windows)
X_MODES = ("step", "tokens", "time")


def run_names(run_dirs):
    """Legend names: each run's folder name, or parent/folder where two folders share a name."""
    full = [os.path.abspath(d).rstrip(os.sep) for d in run_dirs]
    names = [os.path.basename(p) for p in full]
    if len(set(names)) < len(names):
        names = [os.path.join(os.path.basename(os.path.dirname(p)), os.path.basename(p)) for p in full]
    return names


def _finite(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def x_axis(runs, x):
    """(per run the x value of each row, the axis label). `tokens` falls back to steps for every run
    when any run did not record them: one axis must not mix two units."""
    if x not in X_MODES:
        raise MicroGPTError(f"unknown x axis {x!r}: use one of {', '.join(X_MODES)}")
    if x == "tokens":
        lacking = [name for name, rows in runs if not all(_finite(r.get("tokens")) for r in rows)]
        if not lacking:
            return [[float(r["tokens"]) for r in rows] for _, rows in runs], "training tokens"
        return ([[float(r["step"]) for r in rows] for _, rows in runs],
                f"step (no token counts recorded in {', '.join(lacking)})")
    if x == "time":
        xs = [cumulative_elapsed(rows) for _, rows in runs]
        longest = max((max(v) for v in xs if v), default=0.0)
        unit, div = (("hours", 3600.0) if longest > 3 * 3600 else ("minutes", 60.0) if longest > 600
                     else ("seconds", 1.0))
        return [[t / div for t in v] for v in xs], f"time ({unit})"
    return [[float(r["step"]) for r in rows] for _, rows in runs], "step"


def train_windows(xs, rows, max_points=MAX_POINTS, min_steps=MIN_WINDOW_STEPS):
    """(x, mean train loss) per window of consecutive logged rows.

    Each logged train_loss is already the mean over the steps since the row before it. Rows are
    grouped until a group covers at least max(total steps / max_points, min_steps) steps (but
    never fewer than 20 windows): one row per step of one document each (older runs, the seed)
    is too noisy to read, and a long run needs no more points than the picture has room for.
    A window's loss is the mean weighted by the steps each row covers; its x the same mean of x.
    """
    pts, prev_step = [], 0
    for x, r in zip(xs, rows):
        if _finite(r.get("train_loss")):
            steps = max(1, int(r["step"]) - prev_step)  # the steps this row's mean stands for
            pts.append((x, float(r["train_loss"]), steps))
        prev_step = int(r["step"])
    total = sum(p[2] for p in pts)
    need = max(1.0, min(max(total / max_points, min_steps), total / 20))
    wx, wy, group = [], [], []
    for i, p in enumerate(pts):
        group.append(p)
        n = sum(g[2] for g in group)
        if n >= need or i == len(pts) - 1:
            wx.append(sum(g[0] * g[2] for g in group) / n)
            wy.append(sum(g[1] * g[2] for g in group) / n)
            group = []
    return wx, wy


def _series(xs, rows, key):
    pts = [(x, float(r[key])) for x, r in zip(xs, rows) if _finite(r.get(key))]
    return [p[0] for p in pts], [p[1] for p in pts]


RATE_KEYS = ("reward_mean", "test_reward", "test_pass@1", "test_unique", "test_new")  # fractions in [0, 1]


def _rl_keys(runs):
    """The accuracy and reward figures the runs logged: held out (sft's and rl's test_pass@1; for
    names, the reward and the unique and new fractions) where there are any, else the reward and
    pass@k of the runs' own samples."""
    keys = {k for _, rows in runs for r in rows for k in r if k in RATE_KEYS or k.startswith("pass@")}
    held_out = {k for k in keys if k.startswith("test_")}
    return sorted(held_out or keys, key=lambda k: (k != "reward_mean", len(k), k))


def curves_figure(runs, x="step", log=False):
    """The figure for `runs`, a list of (name, metrics rows). Returns a matplotlib Figure whose
    axes are the panels described in this module's docstring."""
    Figure = require_matplotlib()
    if not runs or not any(rows for _, rows in runs):
        raise MicroGPTError("no logged steps to plot: the runs' metrics.jsonl files are empty")
    xs, xlabel = x_axis(runs, x)
    has = lambda key: any(_finite(r.get(key)) for _, rows in runs for r in rows)
    rl_keys = _rl_keys(runs)
    losses = has("train_loss") or has("val_loss")  # (an RL run logs no loss worth drawing)
    panels = (["loss"] if losses or not rl_keys else []) + (["bpb"] if has("val_bpb") else []) + \
             (["rl"] if rl_keys else []) + (["lr"] if has("lr") else [])
    ratios = {"loss": 3.0, "bpb": 2.0, "rl": 2.0, "lr": 1.2}
    fig = Figure(figsize=(7.5, 1.3 + 1.45 * sum(ratios[p] for p in panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [ratios[p] for p in panels]})[:, 0]
    ax = dict(zip(panels, axes))
    single = len(runs) == 1
    for i, ((name, rows), xv) in enumerate(zip(runs, xs)):
        color = f"C{i % 10}"
        tag = "" if single else f"{name} \u00b7 "
        if "loss" in ax:
            wx, wy = train_windows(xv, rows)
            rx, ry = _series(xv, rows, "train_loss")
            if single and len(rx) > len(wx):  # one run: the logged rows faintly behind their means
                ax["loss"].plot(rx, ry, color=color, lw=0.6, alpha=0.25, label="train (each logged step)")
            if wx:
                ax["loss"].plot(wx, wy, color=color, lw=1.6, label=f"{tag}train (window mean)")
            vx, vy = _series(xv, rows, "val_loss")
            if vx:
                ax["loss"].plot(vx, vy, "o--", color=color, lw=1.0, ms=4, mfc="white", mew=1.4,
                                label=f"{tag}validation")
        if "bpb" in ax:
            bx, by = _series(xv, rows, "val_bpb")
            if bx:
                ax["bpb"].plot(bx, by, "o--", color=color, lw=1.0, ms=4, mfc="white", mew=1.4,
                               label=f"{tag}validation")
        if "rl" in ax:
            for k, key in enumerate(rl_keys):
                rx, ry = _series(xv, rows, key)
                if rx:
                    ax["rl"].plot(rx, ry, ["-", "--", ":", "-."][k % 4], color=color, lw=1.4, label=f"{tag}{key}")
        if "lr" in ax:
            lx, ly = _series(xv, rows, "lr")
            if lx:
                ax["lr"].plot(lx, ly, color=color, lw=1.3, label=name)
    if "loss" in ax:
        ax["loss"].set_ylabel("loss (nats / token)")
    if "bpb" in ax:
        ax["bpb"].set_ylabel("val bits / byte")
    if "rl" in ax:
        ax["rl"].set_ylabel("held out" if any(k.startswith("test_") for k in rl_keys) else "reward, pass@k")
    if "lr" in ax:
        ax["lr"].set_ylabel("learning rate")
        from matplotlib.ticker import FuncFormatter
        ax["lr"].yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.008, not 0.8 x 1e-2
    if log:
        from matplotlib.ticker import LogFormatter
        for p in ("loss", "bpb"):
            if p in ax:  # losses span less than a decade: label 2, 3, ... plainly, not 3x10^0
                ax[p].set_yscale("log")
                ax[p].yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
                ax[p].yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    for a in axes:
        a.grid(True, alpha=0.3, which="both" if log else "major")
        if a.get_legend_handles_labels()[0] and (a is axes[0] or not single or a is ax.get("rl")):
            a.legend(fontsize=8, ncol=2 if len(runs) > 3 else 1, loc="upper right", framealpha=0.85)
    axes[-1].set_xlabel(xlabel)
    names = [name for name, _ in runs]
    fig.suptitle(names[0] if single else
                 f"{len(runs)} runs: {', '.join(names[:4])}{', ...' if len(names) > 4 else ''}")
    return fig


def plot_curves(run_dirs, x="step", log=False, svg=False, out=None):
    """Draw the curves of `run_dirs` to `out` (default: RUN/loss.png for one run, loss.png in the
    current folder for several) and, with svg=True, an SVG beside it. -> [written paths]"""
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    run_dirs = [os.fspath(d) for d in run_dirs]
    runs = [(name, read_metrics(d)) for name, d in zip(run_names(run_dirs), run_dirs)]
    if out is None:
        out = os.path.join(run_dirs[0], "loss.png") if len(run_dirs) == 1 else "loss.png"
    return save_figure(curves_figure(runs, x=x, log=log), os.fspath(out), svg=svg)
