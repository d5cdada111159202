"""Checkpoints: a folder any engine can load, written atomically, never pickled.

run_dir/checkpoint/
  model.safetensors      weights by the seed's names, shapes [out, in] (F64 or F32)
  optimizer.safetensors  Adam moments, "m.<name>" and "v.<name>"
  config.json            model config, tokenizer, training/engine/run config, data source, command
  state.json             step reached, tokens and time trained, the random stream's state
A new checkpoint is written in full to a temporary folder and then swapped in by renames, so
a crash, a kill or a full disk at any moment leaves a whole checkpoint (the new one or the
previous one) that load() finds.
"""

import contextlib
import json
import os
import shutil
import time

from microgpt import MicroGPTError, safetensors, tokenizers
from microgpt.config import EngineConfig, GPTConfig, TrainConfig
from microgpt.data import atomic_write_bytes
from microgpt.init import param_shapes

CKPT = "checkpoint"
FORMAT = "microgpt-checkpoint-1"


def _flat(matrix):
    """A [out][in] matrix, flat and row-major: rows of floats, or an engine's numpy array."""
    if hasattr(matrix, "ravel"):
        return matrix.ravel()
    return [float(x) for row in matrix for x in row]


def _rows(shape, flat):
    """Rows of a flat array.array: slices, which numpy turns into a matrix without a Python loop."""
    n_out, n_in = shape
    return [flat[r * n_in:(r + 1) * n_in] for r in range(n_out)]


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


def exists(run_dir):
    return any(os.path.isdir(os.path.join(run_dir, d)) for d in (CKPT, f".{CKPT}.old"))


class Checkpoint:
    """What load() returns: the model config, tokenizer, weights, optimizer state, run state and
    the raw config.json (its "train", "engine", "run", "data", "command" sections)."""

    def __init__(self, path, cfg, config, tokenizer, weights, optimizer, state):
        self.path, self.raw_config = path, cfg
        self.config, self.tokenizer = config, tokenizer
        self.weights, self.optimizer, self.state = weights, optimizer, state

    @property
    def step(self):
        return self.state["step"]

    @property
    def train(self):
        """The TrainConfig the run was trained with."""
        return self._section(TrainConfig, self.raw_config.get("train") or {})

    @property
    def engine(self):
        """The EngineConfig that trained it (an older checkpoint saved only a name and a dtype)."""
        eng = self.raw_config.get("engine")
        if not isinstance(eng, dict):
            eng = {"name": eng or "python", "dtype": self.raw_config.get("dtype")}
        return self._section(EngineConfig, eng)

    def _section(self, cls, d):
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as e:
            raise MicroGPTError(f"{self.path}/config.json is corrupt ({e}): delete the run folder "
                                f"or train again") from None


def load(run_dir, with_optimizer=True, attempts=5):
    """The checkpoint of a run. A writer may be swapping in a new one while we read: if a file
    vanishes under us, read again (the swap takes microseconds)."""
    for attempt in range(attempts):
        try:
            return _load(run_dir, with_optimizer)
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise MicroGPTError(f"the checkpoint in {run_dir} kept changing while it was read: "
                                    f"try again") from None
            time.sleep(0.05 * (attempt + 1))


def _load(run_dir, with_optimizer):
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
        tokenizer = tokenizers.from_dict(cfg["tokenizer"])
    except (KeyError, TypeError, ValueError) as e:
        raise MicroGPTError(f"{path}/config.json is corrupt ({e}): delete the run folder or train again") from None
    shapes = param_shapes(config)
    model_path = os.path.join(path, "model.safetensors")
    weights = _take(_read_tensors(model_path), shapes, "", model_path)
    optimizer = None
    opt_path = os.path.join(path, "optimizer.safetensors")
    if with_optimizer and os.path.exists(opt_path):
        tensors = _read_tensors(opt_path)
        optimizer = {k: _take(tensors, shapes, f"{k}.", opt_path) for k in ("m", "v")}
    return Checkpoint(path, cfg, config, tokenizer, weights, optimizer, state)


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(path)):
            raise  # the folder was swapped away while we read: load() reads again
        raise MicroGPTError(f"checkpoint file {path} is missing: the checkpoint is incomplete; "
                            f"train again or restore it") from None
    except OSError as e:
        raise MicroGPTError(f"cannot read checkpoint file {path} ({e.strerror}): check its permissions") from None


def _read_json(path):
    try:
        return json.loads(_read_bytes(path).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise MicroGPTError(f"checkpoint file {path} is corrupt (not valid JSON): "
                            f"train again or restore it") from None


def _read_tensors(path):
    return safetensors.loads(_read_bytes(path), what=f"checkpoint file {path}")[0]


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


def load_weights(path, config):
    """{name: rows} from one safetensors file of weights (as model.safetensors), shapes checked."""
    return _take(_read_tensors(path), param_shapes(config), "", path)
