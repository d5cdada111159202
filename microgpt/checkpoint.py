"""Checkpoints: a folder any engine can load, written atomically, never pickled.

run_dir/checkpoint/
  model.safetensors      weights by the seed's names, shapes [out, in] (F64 or F32)
  optimizer.safetensors  Adam moments, "m.<name>" and "v.<name>"
  config.json            model config, tokenizer, training config, data source, engine
  state.json             step reached, the random stream's state, last losses
A new checkpoint is written in full to a temporary folder and then swapped in by renames, so
a crash or Ctrl-C at any moment leaves the previous checkpoint whole.
"""

import json
import os
import shutil

from microgpt import MicroGPTError
from microgpt import safetensors
from microgpt.config import GPTConfig, TrainConfig
from microgpt.data import atomic_write_bytes
from microgpt.init import param_shapes
from microgpt import tokenizers

CKPT = "checkpoint"


def _flat(matrix):
    """A [out][in] matrix, flat and row-major: rows of floats, or an engine's numpy array."""
    if hasattr(matrix, "ravel"):
        return matrix.ravel()
    return [float(x) for row in matrix for x in row]


def _rows(shape, flat):
    """Rows of a flat array.array: slices, which numpy turns into a matrix without a Python loop."""
    n_out, n_in = shape
    return [flat[r * n_in:(r + 1) * n_in] for r in range(n_out)]


def save(run_dir, *, weights, optimizer, config, train, tokenizer, state, extra=None, dtype="F64"):
    """Write the checkpoint of a run. weights/optimizer are {name: rows} as engines return them."""
    os.makedirs(run_dir, exist_ok=True)
    final = os.path.join(run_dir, CKPT)
    tmp, old = os.path.join(run_dir, f".{CKPT}.tmp"), os.path.join(run_dir, f".{CKPT}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    shapes = param_shapes(config)
    cfg = {"format": "microgpt-checkpoint-1", "model": config.to_dict(), "train": train.to_dict(),
           "tokenizer": tokenizer.to_dict(), **(extra or {})}
    model_bytes = safetensors.dumps({n: (s, _flat(weights[n])) for n, s in shapes},
                                    metadata={"format": "pt", "microgpt": json.dumps(config.to_dict())},
                                    dtype=dtype)
    atomic_write_bytes(os.path.join(tmp, "model.safetensors"), model_bytes)
    if optimizer is not None:
        opt = {f"{k}.{n}": (s, _flat(optimizer[k][n])) for k in ("m", "v") for n, s in shapes}
        atomic_write_bytes(os.path.join(tmp, "optimizer.safetensors"), safetensors.dumps(opt, dtype=dtype))
    atomic_write_bytes(os.path.join(tmp, "config.json"), (json.dumps(cfg, indent=2) + "\n").encode())
    atomic_write_bytes(os.path.join(tmp, "state.json"), (json.dumps(state) + "\n").encode())
    # swap: checkpoint -> .old, tmp -> checkpoint, drop .old. load() falls back to .old if we die between.
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(final):
        os.rename(final, old)
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def exists(run_dir):
    return any(os.path.isdir(os.path.join(run_dir, d)) for d in (CKPT, f".{CKPT}.old"))


class Checkpoint:
    """What load() returns: config, train config, tokenizer, weights, optimizer state, run state."""

    def __init__(self, path, cfg, weights, optimizer, state):
        self.path = path
        self.raw_config = cfg
        self.config = GPTConfig.from_dict(cfg["model"])
        self.train = TrainConfig.from_dict(cfg.get("train", {}))
        self.tokenizer = tokenizers.from_dict(cfg["tokenizer"])
        self.weights, self.optimizer, self.state = weights, optimizer, state


def load(run_dir, with_optimizer=True):
    path = os.path.join(run_dir, CKPT)
    if not os.path.isdir(path):
        old = os.path.join(run_dir, f".{CKPT}.old")
        if not os.path.isdir(old):
            raise MicroGPTError(f"no checkpoint in {run_dir}: train one first with "
                                f"`microgpt train --out {run_dir}`")
        path = old  # we died mid-swap; the previous checkpoint is whole
    cfg = _read_json(os.path.join(path, "config.json"))
    state = _read_json(os.path.join(path, "state.json"))
    try:
        config = GPTConfig.from_dict(cfg["model"])
        tokenizers.from_dict(cfg["tokenizer"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise MicroGPTError(f"{path}/config.json is corrupt (no valid model or tokenizer): "
                            f"delete the run folder or train again") from None
    shapes = param_shapes(config)
    model_path = os.path.join(path, "model.safetensors")
    weights = _take(_read_tensors(model_path), shapes, "", model_path)
    optimizer = None
    opt_path = os.path.join(path, "optimizer.safetensors")
    if with_optimizer and os.path.exists(opt_path):
        tensors = _read_tensors(opt_path)
        optimizer = {k: _take(tensors, shapes, f"{k}.", opt_path) for k in ("m", "v")}
    return Checkpoint(path, cfg, weights, optimizer, state)


def _read_json(path):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise MicroGPTError(f"checkpoint file {path} is missing: the checkpoint is incomplete; "
                            f"train again or restore it") from None
    except (UnicodeDecodeError, ValueError):
        raise MicroGPTError(f"checkpoint file {path} is corrupt (not valid JSON): "
                            f"train again or restore it") from None


def _read_tensors(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MicroGPTError(f"checkpoint file {path} is missing: train again or restore it") from None
    return safetensors.loads(raw, what=f"checkpoint file {path}")[0]


def _take(tensors, shapes, prefix, path):
    """{name: rows} for every parameter, checking each tensor's presence and shape."""
    out = {}
    for name, shape in shapes:
        if prefix + name not in tensors:
            raise MicroGPTError(f"checkpoint file {path} has no tensor {prefix + name!r}: "
                                f"it is not a microgpt checkpoint of this model")
        got_shape, flat = tensors[prefix + name]
        if list(got_shape) != list(shape):
            raise MicroGPTError(f"checkpoint tensor {prefix + name!r} has shape {got_shape} but the model "
                                f"config says {shape}: the checkpoint is of a different model shape")
        out[name] = _rows(shape, flat)
    return out
