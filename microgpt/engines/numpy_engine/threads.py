"""How many threads numpy's BLAS (OpenBLAS) may use for the engine's matrix products.

OpenBLAS starts one thread per core, and its threads spin while they wait for each other: when
another process keeps one of two cores busy, a matrix product waits for a thread that is not
running, and a step becomes ~10x slower (bench/bench_threads.py). The small matrices of these
models gain little from a second thread even on a quiet machine, so the default is one thread;
--threads N overrides it.
"""

from microgpt.errors import MicroGPTError

DEFAULT_THREADS = 1
_applied = None  # the limit set in this process (a threadpool_limits object keeps it until released)


def limit_blas_threads(threads=None):
    """Limit BLAS to `threads` threads (None: DEFAULT_THREADS) for the rest of the process."""
    global _applied
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise MicroGPTError(f"--threads must be a whole number >= 1, got {threads!r}")
    n = DEFAULT_THREADS if threads is None else threads
    try:
        from threadpoolctl import threadpool_limits
    except ModuleNotFoundError:
        if threads is None:
            return None  # the default is advice: without threadpoolctl, BLAS keeps its own
        raise MicroGPTError("--threads needs threadpoolctl: pip install 'microgpt[numpy]'") from None
    if _applied != n:
        threadpool_limits(limits=n, user_api="blas")
        _applied = n
    return n
