"""metrics.jsonl: one JSON line per logged step, written as a run trains and read back by the
pictures, the report and TensorBoard; and the window of steps each logged line is the mean of."""

import contextlib
import json
import os

from microgpt.errors import MicroGPTError
from microgpt.files import atomic_write_bytes
from microgpt.train.tensorboard import SummaryWriter, log_metrics


class Window:
    """The steps since the last log line: logged figures are their means, not the last batch's."""

    def __init__(self):
        self.sums, self.n, self.seconds, self.tokens = {}, 0, 0.0, 0

    def add(self, seconds, tokens, **figures):
        self.n += 1
        self.seconds += seconds
        self.tokens += tokens
        for k, v in figures.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def means(self):
        return {k: v / self.n for k, v in self.sums.items()} if self.n else {}

    def tokens_per_s(self):
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class MetricsLog:
    """metrics.jsonl: one JSON line per logged step. On resume it keeps only the lines up to the
    step resumed from (a run killed after logging but before saving logged steps it will redo)."""

    def __init__(self, run_dir, start_step, tensorboard=False):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.f = self.tb = None
        try:
            kept = b""
            if start_step and os.path.exists(self.path):
                with open(self.path, "rb") as f:
                    steps = ((line, _step_of(line)) for line in f.read().splitlines(keepends=True))
                    kept = b"".join(line for line, step in steps if step is not None and step <= start_step)
            atomic_write_bytes(self.path, kept)
            self.f = open(self.path, "a")  # noqa: SIM115 (open for the whole run; closed by close())
        except OSError as e:
            raise MicroGPTError(f"cannot write {self.path} ({e.strerror or e}): free some space or fix the "
                                f"folder's permissions") from None
        if tensorboard:  # (hand-written event files: no dependency to write them)
            logdir = os.path.join(run_dir, "tensorboard")
            try:
                self.tb = SummaryWriter(logdir)
            except OSError as e:
                self.close()
                raise MicroGPTError(f"cannot write TensorBoard files in {logdir} ({e.strerror or e}): free some "
                                    f"space or fix the folder's permissions") from None

    def write(self, record):
        try:
            self.f.write(json.dumps(record) + "\n")
            self.f.flush()
        except OSError as e:
            raise self._failed(self.path, e) from None
        if self.tb:
            try:
                log_metrics(self.tb, record)
                self.tb.flush()
            except OSError as e:
                raise self._failed(self.tb.path, e) from None

    @staticmethod
    def _failed(path, e):
        return MicroGPTError(f"cannot write {path} ({e.strerror or e}): the last checkpoint is kept; "
                             f"free some space, then continue with --resume")

    def close(self):
        for f in (self.f, self.tb):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


def _step_of(line):
    """The step of one metrics.jsonl line; None for a line a kill cut short."""
    try:
        step = json.loads(line).get("step")
        return step if isinstance(step, int) else None
    except (ValueError, AttributeError, RecursionError):
        return None


def read_metrics(run_dir):
    """The rows of a run's metrics.jsonl, one dict per logged step. A half-written last line (the
    run is still training) is skipped; any other bad line is an error naming the file."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise MicroGPTError(f"no metrics.jsonl in {run_dir}: train a run there first")
    with open(path, "rb") as f:
        lines = [l for l in f.read().decode("utf-8", errors="replace").split("\n") if l.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):  # (RecursionError: nested deeper than the stack)
            if i == len(lines) - 1:
                break
            raise MicroGPTError(f"{path} line {i + 1} is not JSON: the metrics file is corrupt") from None
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def cumulative_elapsed(rows):
    """Seconds since the run began, per row. A resumed run's clock restarts at 0; each restart
    continues from where the previous part ended, so time only moves forward."""
    out, offset, prev = [], 0.0, 0.0
    for r in rows:
        t = float(r.get("elapsed", prev - offset) or 0.0)
        if t + offset < prev:        # the clock went back: a resume
            offset = prev
        out.append(t + offset)
        prev = t + offset
    return out


METRICS_SUFFIX = ".metrics"  # the files write_run_metrics makes, and replaces when run again


def write_run_metrics(run_dir, logdir=None):
    """Write a finished run's whole metrics.jsonl as TensorBoard scalars into `logdir` (default
    RUN/tensorboard), replacing the file an earlier call wrote there (TensorBoard would draw both).
    Wall times are rebuilt from `elapsed`, ending when metrics.jsonl was last written.
    -> the event file's path"""
    rows = read_metrics(run_dir)
    elapsed = cumulative_elapsed(rows)
    end = os.path.getmtime(os.path.join(run_dir, "metrics.jsonl"))
    start = end - (elapsed[-1] if elapsed else 0.0)
    logdir = logdir or os.path.join(run_dir, "tensorboard")
    if os.path.isdir(logdir):
        for name in os.listdir(logdir):
            if name.startswith("events.out.tfevents.") and name.endswith(METRICS_SUFFIX):
                os.remove(os.path.join(logdir, name))
    with SummaryWriter(logdir, filename_suffix=METRICS_SUFFIX) as w:
        for row, t in zip(rows, elapsed):
            log_metrics(w, row, wall_time=start + t)
        return w.path
