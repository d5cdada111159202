"""What a run folder's checkpoint is called, how large its parts may be, and the one error for
a damaged file."""

import os

from microgpt.errors import MicroGPTError

CKPT = "checkpoint"
FORMAT = "microgpt-checkpoint-1"
FIX = "restore the checkpoint from a copy, or delete the run folder and train again"
MAX_JSON_BYTES = {"config.json": 128 << 20, "state.json": 1 << 20}  # (a BPE of 10^6 merges: ~50 MB)
MAX_SIZE = 1 << 40        # no model size (n_embd, vocab_size, ...) is larger
MAX_MAGNITUDE = 1e150     # no weight or moment is larger: its square would overflow a float
BPE_BYTES_PER_FILE_BYTE = 64  # a BPE's tokens take at most this many bytes per byte of config.json (+ 1 MB)


def exists(run_dir):
    return any(os.path.isdir(os.path.join(run_dir, d)) for d in (CKPT, f".{CKPT}.old"))


def corrupt(path, why):
    """The error for a checkpoint file whose content is wrong: names the file, why, and what to do."""
    return MicroGPTError(f"checkpoint file {path} is corrupt ({why}): {FIX}")


def header_allowance(n_tensors):
    # a header takes ~100 bytes a tensor: allow far more, but not one whose JSON alone would take
    # gigabytes to parse
    return (1 << 20) + 1024 * n_tensors
