"""Pictures of what a run learned: loss curves, attention, embeddings, a report page, TensorBoard.

Every drawing module imports matplotlib only inside its functions, so `import microgpt` and
training never pay for it. Figures are built on `matplotlib.figure.Figure` directly, never
through pyplot: nothing opens a window, no global figure list grows, and a user's notebook
backend is left alone. Saving a Figure picks the Agg renderer (PNG) or the SVG one by itself.
"""

import io
import os

from microgpt.errors import MicroGPTError

DPI = 110          # figures are 6-8 inches wide: ~700-900 pixels, right for a README
PLOT_EXTRA = "pip install 'microgpt[plot]'"


def require_matplotlib():
    """matplotlib's Figure class, or a one-line MicroGPTError naming the extra that installs it."""
    try:
        from matplotlib.figure import Figure  # no pyplot, so no backend to choose or display to need
    except ImportError:
        raise MicroGPTError(f"pictures need matplotlib: {PLOT_EXTRA}") from None
    return Figure


def figure_bytes(fig, fmt="png"):
    """The figure encoded as PNG or SVG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)
    return buf.getvalue()


def write_file(path, raw):
    """Write bytes atomically (a crash never leaves half a file), readable as any new file of the
    user is (the umask); a full disk or a read-only folder is one line, not a traceback."""
    from microgpt.files import atomic_write_bytes
    try:
        atomic_write_bytes(path, raw)
    except OSError as e:
        raise MicroGPTError(f"cannot write {path} ({e.strerror or e}): free some space or fix the folder's "
                            f"permissions, or write it elsewhere") from None
    return path


def save_figure(fig, out, svg=False):
    """Write `fig` to `out` (PNG, or SVG when `out` ends in .svg) and, with svg=True, an SVG beside
    the PNG. Each file is written atomically: a crash never leaves half an image. -> [paths]"""
    root, ext = os.path.splitext(out)
    formats = ["svg"] if ext.lower() == ".svg" else ["png"] + (["svg"] if svg else [])
    if ext.lower() not in (".png", ".svg"):
        root = out  # "loss" or "loss.pdf" -> loss.png
    paths = []
    for fmt in formats:
        path = f"{root}.{fmt}"
        paths.append(write_file(path, figure_bytes(fig, fmt)))
    return paths

