"""Worker processes for `microgpt data prepare`: run a task over work items on N cores, with one
progress line fed by counters the workers share, and a clean stop on Ctrl-C or SIGTERM.

Workers are started with "spawn" (a fresh interpreter: no state copied from the parent, the same
on Linux, macOS and Windows) and ignore Ctrl-C: the parent decides what to keep and ends them.
Whatever a worker finished is already on disk (each item writes its own record last), so a stop
loses only the items in flight. With one worker the tasks run in this process.
"""

import multiprocessing
import signal

from microgpt.data import encode
from microgpt.data.progress import Progress

TASKS = {"encode": encode.encode_item, "alphabet": encode.item_alphabet, "hash": encode.hash_source}
_worker = {}  # in a worker process: the plan and the shared counters


def _init(plan, chars, tokens):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (the parent handles Ctrl-C for everyone)
    _worker.update(plan=plan, chars=chars, tokens=tokens)


def _progress(n_chars, n_tokens=0):
    pending = _worker.setdefault("pending", [0, 0])
    pending[0] += n_chars
    pending[1] += n_tokens
    if pending[0] >= 1 << 20:  # (a shared counter takes a lock: add about a megabyte at a time)
        _flush()


def _flush():
    pending = _worker.get("pending")
    if pending:
        with _worker["chars"].get_lock():
            _worker["chars"].value += pending[0]
        with _worker["tokens"].get_lock():
            _worker["tokens"].value += pending[1]
        pending[0] = pending[1] = 0


def _run(task, k):
    try:
        return TASKS[task](_worker["plan"], k, _progress)
    finally:
        _flush()


class Stopped(Exception):
    """Ctrl-C or SIGTERM during the work: what was finished is kept."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def run_tasks(plan, jobs, workers, label, total=None):
    """[(task, k)] run on `workers` processes; returns their results in order. A worker's error is
    raised here; Ctrl-C or SIGTERM raise Stopped once the workers are gone."""
    if not jobs:
        return []
    bar = Progress(label, total)
    received = []

    def on_signal(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_signal)
    try:
        if workers <= 1:
            return _serial(plan, jobs, bar)
        return _parallel(plan, jobs, workers, bar)
    except KeyboardInterrupt:
        raise Stopped(received[0] if received else signal.SIGINT) from None
    finally:
        signal.signal(signal.SIGTERM, old)


def _serial(plan, jobs, bar):
    done = [0, 0]

    def progress(n_chars, n_tokens=0):
        done[0] += n_chars
        done[1] += n_tokens
        bar.show(*done)

    results = [TASKS[task](plan, k, progress) for task, k in jobs]
    bar.close(*done)
    return results


def _parallel(plan, jobs, workers, bar):
    ctx = multiprocessing.get_context("spawn")
    chars, tokens = ctx.Value("q", 0), ctx.Value("q", 0)
    pool = ctx.Pool(min(workers, len(jobs)), initializer=_init, initargs=(plan, chars, tokens))
    try:
        pending = [pool.apply_async(_run, job) for job in jobs]
        for r in pending:
            while not r.ready():
                r.wait(0.2)
                bar.show(chars.value, tokens.value)
        results = [r.get() for r in pending]  # (a worker's exception is raised here)
        bar.close(chars.value, tokens.value)
        pool.close()
        return results
    finally:
        pool.terminate()
        pool.join()
