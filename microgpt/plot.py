"""Plot a run's metrics.jsonl (train and validation loss against step) to loss.png."""

import json
import os

from microgpt import MicroGPTError


def read_metrics(run_dir):
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise MicroGPTError(f"no metrics.jsonl in {run_dir}: train a run there first")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def smooth(xs, beta=0.98):
    """Bias-corrected exponential moving average: one document per step is a noisy loss."""
    out, avg = [], 0.0
    for i, x in enumerate(xs):
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def plot_run(run_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MicroGPTError("plotting needs matplotlib: pip install 'microgpt[plot]'") from None
    rows = read_metrics(run_dir)
    fig, ax = plt.subplots(figsize=(7, 4))
    steps, train = [r["step"] for r in rows], [r["train_loss"] for r in rows]
    ax.plot(steps, train, lw=0.5, alpha=0.35, color="C0", label="train (per step)")
    ax.plot(steps, smooth(train), lw=1.5, color="C0", label="train (smoothed)")
    val = [r for r in rows if r.get("val_loss") is not None]
    if val:
        ax.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", color="C1", label="val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.set_title(os.path.basename(os.path.abspath(run_dir)))
    ax.legend()
    fig.tight_layout()
    out = os.path.join(run_dir, "loss.png")
    fig.savefig(out, dpi=120)
    return out
