"""save(): a whole checkpoint written to a temporary folder, then swapped in by renames."""

import contextlib
import json
import os
import shutil

from microgpt import safetensors
from microgpt.checkpoint.layout import CKPT, FORMAT, exists
from microgpt.errors import MicroGPTError
from microgpt.files import atomic_write_bytes
from microgpt.params import param_shapes


def _flat(matrix):
    """A [out][in] matrix, flat and row-major: rows of floats, or an engine's numpy array."""
    if hasattr(matrix, "ravel"):
        return matrix.ravel()
    return [float(x) for row in matrix for x in row]


def save_weights(path, weights, config):
    """One safetensors file of weights ({name: matrix} as engines return them, float64), written
    atomically; read.load_weights reads it back (RL's reference weights; a served model's process)."""
    raw = safetensors.dumps({n: (s, _flat(weights[n])) for n, s in param_shapes(config)})
    try:
        atomic_write_bytes(path, raw)
    except OSError as e:
        raise MicroGPTError(f"cannot write {path} ({e.strerror}): free some space or fix the folder's "
                            f"permissions") from None


def save(run_dir, *, weights, optimizer, config, tokenizer, state, meta=None, dtype="F64"):
    """Write the checkpoint of a run. weights/optimizer are {name: matrix} as engines return them;
    meta: more sections of config.json ("train", "engine", "run", "data", "command", ...)."""
    final = os.path.join(run_dir, CKPT)
    tmp, old = os.path.join(run_dir, f".{CKPT}.tmp"), os.path.join(run_dir, f".{CKPT}.old")
    shapes = param_shapes(config)
    cfg = {"format": FORMAT, "model": config.to_dict(), "tokenizer": tokenizer.to_dict(), **(meta or {})}
    try:
        os.makedirs(run_dir, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        model_bytes = safetensors.dumps({n: (s, _flat(weights[n])) for n, s in shapes},
                                        metadata={"format": "pt", "microgpt": json.dumps(config.to_dict())},
                                        dtype=dtype)
        atomic_write_bytes(os.path.join(tmp, "model.safetensors"), model_bytes)
        if optimizer is not None:
            opt = {f"{k}.{n}": (s, _flat(optimizer[k][n])) for k in ("m", "v") for n, s in shapes}
            atomic_write_bytes(os.path.join(tmp, "optimizer.safetensors"), safetensors.dumps(opt, dtype=dtype))
        atomic_write_bytes(os.path.join(tmp, "config.json"), (json.dumps(cfg, indent=2) + "\n").encode())
        atomic_write_bytes(os.path.join(tmp, "state.json"), (json.dumps(state) + "\n").encode())
        # swap: checkpoint -> .old, tmp -> checkpoint, drop .old; load() falls back to .old if we
        # die between the renames. If an earlier save died there, .old is the whole one: restore it
        # first, so it is never deleted before its successor is in place.
        if not os.path.isdir(final) and os.path.isdir(old):
            os.rename(old, final)
        shutil.rmtree(old, ignore_errors=True)
        if os.path.isdir(final):
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync_dir(run_dir)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(final) and os.path.isdir(old):
            with contextlib.suppress(OSError):  # (if not, load() still finds .old)
                os.rename(old, final)
        kept = "the previous checkpoint is kept" if exists(run_dir) else "no checkpoint was written"
        raise MicroGPTError(f"could not write the checkpoint in {run_dir} ({e.strerror or e}): {kept}; "
                            f"free some space or fix the folder's permissions, then continue with --resume") from None


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the renames are still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
