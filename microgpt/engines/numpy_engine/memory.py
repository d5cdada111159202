"""Keep the memory a step frees for the next step, instead of giving it back to the system at once.

Each training step allocates and frees the same activations and gradients, many of them over a
megabyte. glibc's malloc serves blocks above its mmap threshold (128 KiB at first; it adapts, up
to 32 MiB) straight from the kernel and unmaps them when freed, and gives the free top of its heap
back above its trim threshold: with the defaults a step keeps faulting in fresh (zeroed) pages.
Raising both thresholds makes a fresh numpy process 1.6-1.7x faster (bench/bench_memory.py: the
README's 200K names model 13.8K -> 23.8K tokens/s, a 0.5M BPE-512 tinyshakespeare model 11.8K ->
19.3K); no number changes, and the process keeps up to TRIM_THRESHOLD of freed memory for reuse.
Where malloc is not glibc's (macOS, Windows, musl) this does nothing. torch's CPU allocator does not
gain from it (measured).
"""

import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts on 64-bit (its heaps' size / 2)
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory():
    """Raise glibc's mmap and trim thresholds for this process; True if glibc took both."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # (no C library by that name, or no mallopt in it)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
