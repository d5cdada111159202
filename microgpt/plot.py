"""Kept only so that today's `microgpt plot --out RUN` keeps working: the curves now live in
microgpt.pictures.curves (several runs, x = step | tokens | time, bits per byte, lr). Once the
CLI calls plot_curves directly, this file can go."""

from microgpt.pictures.curves import plot_curves, read_metrics  # read_metrics moved there

__all__ = ["plot_run", "read_metrics"]


def plot_run(run_dir):
    """Write RUN/loss.png; returns its path."""
    return plot_curves([run_dir])[0]
