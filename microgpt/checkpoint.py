"""Checkpoints: a folder any engine can load, written atomically, never pickled.

run_dir/checkpoint/
  model.safetensors      weights by the seed's names, shapes [out, in] (F64 or F32)
  optimizer.safetensors  Adam moments, "m.<name>" and "v.<name>"
  config.json            model config, tokenizer, training/engine/run config, data source, the command
                         that started the run and those that resumed it
  state.json             step reached, tokens and time trained, the random stream's state
A new checkpoint is written in full to a temporary folder and then swapped in by renames, so
a crash, a kill or a full disk at any moment leaves a whole checkpoint (the new one or the
previous one) that load() finds. A reader opens all the files first, through one handle on the
folder, so a save swapping meanwhile never mixes two checkpoints.

load() trusts no byte of them: each file's size is checked before it is read (the weight files
against the parameter count config.json gives, so an absurd config allocates nothing), its JSON
strictly parsed, every config section type- and value-checked, the tokenizer matched to the
model, the random stream's state and the step checked, the tensors' shapes and values (finite,
of sane size, Adam's v >= 0). Anything wrong is one MicroGPTError naming the file and what to do.
"""

import contextlib
import json
import math
import os
import random
import re
import shutil
import stat
import time

from microgpt import MicroGPTError, jsonfile, safetensors, tokenizers
from microgpt.config import EngineConfig, GPTConfig, RunConfig, TrainConfig
from microgpt.data import atomic_write_bytes
from microgpt.engines import ENGINES
from microgpt.init import num_params, param_shapes

CKPT = "checkpoint"
FORMAT = "microgpt-checkpoint-1"
FIX = "restore the checkpoint from a copy, or delete the run folder and train again"
MAX_JSON_BYTES = {"config.json": 128 << 20, "state.json": 1 << 20}  # (a BPE of 10^6 merges: ~50 MB)
MAX_SIZE = 1 << 40        # no model size (n_embd, vocab_size, ...) is larger
MAX_MAGNITUDE = 1e150     # no weight or moment is larger: its square would overflow a float
BPE_BYTES_PER_FILE_BYTE = 64  # a BPE's tokens take at most this many bytes per byte of config.json (+ 1 MB)
# what config.json may name for each engine (the engines refuse anything else, in their own words)
GRAPHS = ("textbook", "fused")
ENGINE_DTYPES = {"python": (None, "float64"), "numpy": (None, "float64", "float32"),
                 "torch": (None, "float32", "float64", "bf16")}
DEVICE = re.compile(r"cpu|mps|cuda(:\d{1,4})?")
DIR_FD = os.open in os.supports_dir_fd  # (Windows: no)


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
    """What load() returns: the model config, tokenizer, weights, optimizer state, run state, the
    training and engine config it was saved with, and the raw config.json (its "run", "data",
    "command" sections). Every part has been checked: any engine can be built from it."""

    def __init__(self, path, cfg, config, tokenizer, weights, optimizer, state, train=None, engine=None):
        self.path, self.raw_config = path, cfg
        self.config, self.tokenizer = config, tokenizer
        self.weights, self.optimizer, self.state = weights, optimizer, state
        self.train = train if train is not None else TrainConfig()
        self.engine = engine if engine is not None else EngineConfig()

    @property
    def step(self):
        return self.state["step"]


class _Swapped(Exception):
    """A writer swapped a new checkpoint in while we opened this one's files: read again."""


def load(run_dir, with_optimizer=True, attempts=5):
    """The checkpoint of a run, every file checked (see the module's docstring). A writer may be
    swapping in a new one while we read: then read again (the swap takes microseconds)."""
    for attempt in range(attempts):
        try:
            return _load(run_dir, with_optimizer)
        except _Swapped:
            if attempt == attempts - 1:
                raise MicroGPTError(f"the checkpoint in {run_dir} kept changing while it was read: "
                                    f"try again") from None
            time.sleep(0.05 * (attempt + 1))


def _load(run_dir, with_optimizer):
    path = os.path.join(run_dir, CKPT)
    if not os.path.isdir(path):
        old = os.path.join(run_dir, f".{CKPT}.old")
        if not os.path.isdir(old):
            if os.path.lexists(path):
                raise MicroGPTError(f"{path} is not a folder: {FIX}")
            raise MicroGPTError(f"no checkpoint in {run_dir}: train one first with "
                                f"`microgpt train --out {run_dir}`")
        path = old  # we died mid-swap; the previous checkpoint is whole
    names = ["config.json", "state.json", "model.safetensors"] + (["optimizer.safetensors"] if with_optimizer else [])
    with _Snapshot(path, names) as snap:
        cfg = _json(snap, "config.json")
        config, tokenizer, train, engine = _check_config(cfg, snap.file("config.json"), snap.size("config.json"))
        state = _check_state(_json(snap, "state.json"), train, snap.file("state.json"))
        shapes = _check_sizes(snap, config)
        weights = _take(_tensors(snap, "model.safetensors", len(shapes)), shapes, "", snap.file("model.safetensors"))
        optimizer = None
        if with_optimizer and snap.present("optimizer.safetensors"):
            tensors = _tensors(snap, "optimizer.safetensors", 2 * len(shapes))
            optimizer = {k: _take(tensors, shapes, f"{k}.", snap.file("optimizer.safetensors")) for k in ("m", "v")}
    return Checkpoint(path, cfg, config, tokenizer, weights, optimizer, state, train, engine)


class _Snapshot:
    """A checkpoint folder's files, all opened before any is read, through one handle on the
    folder: a writer swapping in a new checkpoint meanwhile can make us read again (_Swapped),
    never mix two checkpoints' files. (Without dir_fd support, as on Windows: by path.)"""

    def __init__(self, path, names):
        self.path, self.fds, self.dir_fd = path, {}, None
        try:
            if DIR_FD:
                try:
                    self.dir_fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                except FileNotFoundError:
                    raise _Swapped from None
                except OSError as e:
                    raise MicroGPTError(f"cannot read the checkpoint folder {path} ({e.strerror}): "
                                        f"check its permissions") from None
            for name in names:
                self.fds[name] = self._open(name)
        except BaseException:
            self.close()
            raise

    def _open(self, name):
        # O_NONBLOCK: a FIFO planted under a checkpoint's name must not block the open
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            if self.dir_fd is not None:
                fd = os.open(name, flags, dir_fd=self.dir_fd)
            else:
                fd = os.open(os.path.join(self.path, name), flags)
        except FileNotFoundError:
            if self._swapped():
                raise _Swapped from None
            return None
        except OSError as e:
            raise MicroGPTError(f"cannot read checkpoint file {self.file(name)} ({e.strerror}): "
                                f"check its permissions") from None
        self.fds[name] = fd  # (so close() closes it whatever happens next)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MicroGPTError(f"checkpoint file {self.file(name)} is not a regular file: {FIX}")
        return fd

    def _swapped(self):
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return True
        if self.dir_fd is None:
            return not stat.S_ISDIR(now.st_mode)
        then = os.fstat(self.dir_fd)
        return (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino)

    def file(self, name):
        return os.path.join(self.path, name)

    def present(self, name):
        return self.fds.get(name) is not None

    def size(self, name):
        return os.fstat(self._fd(name)).st_size if self.present(name) else 0

    def _fd(self, name):
        fd = self.fds.get(name)
        if fd is None:
            raise MicroGPTError(f"checkpoint file {self.file(name)} is missing: the checkpoint is incomplete; {FIX}")
        return fd

    def read(self, name, limit):
        """The file's bytes; one larger than `limit` is refused before it is read."""
        fd = self._fd(name)
        size = os.fstat(fd).st_size
        if size > limit:
            raise corrupt(self.file(name), f"{size:,} bytes, more than the {limit:,} such a file can need")
        chunks, got = [], 0
        try:
            while got <= limit:
                # os.read allocates what it is asked for: ask for what fstat said is there (then a
                # little more, to see the end of a file that grew meanwhile)
                chunk = os.read(fd, min(size - got if got < size else 1 << 16, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except OSError as e:
            raise MicroGPTError(f"cannot read checkpoint file {self.file(name)} ({e.strerror}): "
                                f"check the file and the disk") from None
        if got > limit:  # it grew while we read
            raise corrupt(self.file(name), f"more than the {limit:,} bytes such a file can need")
        return b"".join(chunks)

    def close(self):
        for fd in [*self.fds.values(), self.dir_fd]:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fds, self.dir_fd = {}, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def corrupt(path, why):
    """The error for a checkpoint file whose content is wrong: names the file, why, and what to do."""
    return MicroGPTError(f"checkpoint file {path} is corrupt ({why}): {FIX}")


def _json(snap, name):
    path = snap.file(name)
    return jsonfile.loads(snap.read(name, MAX_JSON_BYTES[name]), lambda why: corrupt(path, why))


def _tensors(snap, name, n_tensors):
    return safetensors.loads(snap.read(name, snap.size(name)), what=f"checkpoint file {snap.file(name)}", fix=FIX,
                             max_header=_header_allowance(n_tensors))[0]


def _header_allowance(n_tensors):
    # a header takes ~100 bytes a tensor: allow far more, but not one whose JSON alone would take
    # gigabytes to parse
    return (1 << 20) + 1024 * n_tensors


# ---------------------------------------------------------------- config.json and state.json


def _check_config(cfg, path, size):
    """(GPTConfig, tokenizer, TrainConfig, EngineConfig) from config.json, every section checked:
    its types (JSONConfig.from_dict), its values (each config's validate()), and that the
    tokenizer fits the model."""
    def bad(why):
        return corrupt(path, why)
    if not isinstance(cfg, dict):
        raise bad("not a JSON object")
    if cfg.get("format") != FORMAT:
        raise bad(f"its format is {jsonfile.short(cfg.get('format'))}, not {FORMAT!r}: not a microgpt "
                  f"checkpoint, or one from a newer version")
    config = _section(GPTConfig, cfg.get("model"), "model", bad, required=True)
    for k, v in config.to_dict().items():
        if type(v) is int and v > MAX_SIZE:  # (the sizes; the modern parts are strings, bools, floats)
            raise bad(f"model.{k} is {v:,}, more than any model can have")
    _validated(config, "model", bad)
    _check_bpe_bytes(cfg.get("tokenizer"), size, bad)
    try:
        tokenizer = tokenizers.from_dict(cfg.get("tokenizer"))
    except (TypeError, ValueError, KeyError, MicroGPTError) as e:
        raise bad(f"tokenizer: {_why(e)}") from None
    except RecursionError:
        raise bad("tokenizer: nested too deeply") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise bad(f"its tokenizer has {tokenizer.vocab_size:,} tokens but the model's vocab_size is "
                  f"{config.vocab_size:,}: they do not belong together")
    train = _validated(_section(TrainConfig, cfg.get("train"), "train", bad), "train", bad)
    engine = cfg.get("engine")
    if not isinstance(engine, dict):  # an older checkpoint saved only a name and a dtype
        engine = {"name": engine or "python", "dtype": cfg.get("dtype")}
    engine = _check_engine(_section(EngineConfig, engine, "engine", bad), bad)
    run = cfg.get("run")
    if run is not None:
        if not isinstance(run, dict):
            raise bad("its run section is not a JSON object")
        _validated(_section(RunConfig, {k: v for k, v in run.items() if k != "out"}, "run", bad), "run", bad)
    data = cfg.get("data")
    if data is not None and not (isinstance(data, dict) and isinstance(data.get("default", False), bool) and
                                 all(isinstance(data.get(k), (str, type(None))) for k in ("path", "sha256"))):
        raise bad("its data section is not {\"path\": str, \"sha256\": str, \"default\": bool}")
    is_command = lambda c: isinstance(c, str) or (isinstance(c, list) and all(isinstance(a, str) for a in c))
    if not (cfg.get("command") is None or is_command(cfg["command"])):
        raise bad("its command is not a list of strings")
    resumed = cfg.get("resumed")
    if not (resumed is None or (isinstance(resumed, list) and all(map(is_command, resumed)))):
        raise bad("its resumed section is not a list of commands (lists of strings)")
    return config, tokenizer, train, engine


def _check_bpe_bytes(tok, size, bad):
    """A BPE tokenizer builds the bytes of every token, and merges nested in each other double
    them: 25 merges in a few hundred bytes of JSON would take 64 MB. Refuse tokens that add up to
    far more than the file that describes them (a trained tokenizer's come to about its JSON's
    size) before they are built. (Malformed merges are left to the tokenizer to name.)"""
    merges = tok.get("merges") if isinstance(tok, dict) and tok.get("type") == "bpe" else None
    if not isinstance(merges, list):
        return
    lengths, total = [1] * 256, 256
    for k, m in enumerate(merges):
        if not (isinstance(m, list) and len(m) == 2 and all(_is_int(i) and 0 <= i < 256 + k for i in m)):
            return
        lengths.append(lengths[m[0]] + lengths[m[1]])
        total += lengths[-1]
        if total > BPE_BYTES_PER_FILE_BYTE * size + (1 << 20):
            raise bad(f"tokenizer: its merges make tokens of more than {total:,} bytes in all, from a file of "
                      f"{size:,} bytes")


def _section(cls, d, name, bad, required=False):
    if d is None and not required:
        return cls()
    try:
        return cls.from_dict(d)
    except (TypeError, ValueError) as e:
        raise bad(f"{name}: {_why(e)}") from None


def _validated(cfg, name, bad):
    try:
        return cfg.validate()
    except MicroGPTError as e:
        raise bad(f"{name}: {_why(e)}") from None


def _why(e):
    """An exception's message, cut to its first part (a validate() message ends with its own
    advice, for the command line: the file's advice replaces it)."""
    return str(e).split(": pass ")[0].split(": use ")[0].split(": choose ")[0][:200]


def _check_engine(engine, bad):
    if engine.name not in ENGINES:
        raise bad(f"engine: unknown engine {jsonfile.short(engine.name)}")
    if engine.graph not in GRAPHS:
        raise bad(f"engine: unknown graph {jsonfile.short(engine.graph)}")
    if engine.dtype not in ENGINE_DTYPES.get(engine.name, (None, "float64", "float32", "bf16")):
        raise bad(f"engine: dtype {jsonfile.short(engine.dtype)} is not one of the {engine.name} engine's")
    if engine.device is not None and not DEVICE.fullmatch(engine.device):
        raise bad(f"engine: unknown device {jsonfile.short(engine.device)}")
    if engine.threads is not None and not 1 <= engine.threads <= 4096:
        raise bad(f"engine: threads {engine.threads} is not a whole number from 1 to 4096")
    return engine


def _check_state(state, train, path):
    """state.json: the step reached (0..train.steps), tokens and time trained, and the random
    stream's state exactly as random.Random.getstate() gives it."""
    def bad(why):
        return corrupt(path, why)
    if not isinstance(state, dict):
        raise bad("not a JSON object")
    step = state.get("step")
    if not _is_int(step) or not 0 <= step <= train.steps:
        raise bad(f"its step is {jsonfile.short(step)}, not a whole number from 0 to the run's {train.steps:,} steps")
    if "tokens" in state and not (_is_int(state["tokens"]) and state["tokens"] >= 0):
        raise bad(f"its tokens is {jsonfile.short(state['tokens'])}, not a whole number >= 0")
    if "elapsed" in state and not (_is_number(state["elapsed"]) and state["elapsed"] >= 0):
        raise bad(f"its elapsed is {jsonfile.short(state['elapsed'])}, not a number of seconds >= 0")
    if state.get("last_loss") is not None and not _is_number(state["last_loss"]):
        raise bad(f"its last_loss is {jsonfile.short(state['last_loss'])}, not a finite number")
    if not _is_rng_state(state.get("rng_state")):
        raise bad("its rng_state is not the state of Python's random stream (version 3, 625 whole numbers, "
                  "gauss_next)")
    return state


def _is_rng_state(s):
    if not (isinstance(s, list) and len(s) == 3 and s[0] == 3 and _is_int(s[0])):
        return False
    internal, gauss_next = s[1], s[2]
    if not (isinstance(internal, list) and len(internal) == 625 and all(_is_int(x) for x in internal)):
        return False
    if not (all(0 <= x < 2 ** 32 for x in internal[:624]) and 0 <= internal[624] <= 624):
        return False
    if gauss_next is not None and not _is_number(gauss_next):
        return False
    try:
        random.Random().setstate((3, tuple(internal), gauss_next))
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x):
    return (isinstance(x, float) and math.isfinite(x)) or _is_int(x)


# ---------------------------------------------------------------- the safetensors files


def _check_sizes(snap, config):
    """The parameter shapes, once the weight file is known to be large enough to hold that many
    parameters (and not absurdly larger): a config.json that describes a model of 10^12
    parameters is refused before anything is allocated for it."""
    n, n_tensors = num_params(config), 3 + 6 * config.n_layer
    for name, per_param in (("model.safetensors", 1), ("optimizer.safetensors", 2)):
        if name == "optimizer.safetensors" and not snap.present(name):
            continue
        size = snap.size(name)
        least = 8 + 4 * per_param * n  # (F32 is the smallest dtype)
        most = 8 + _header_allowance(per_param * n_tensors) + 8 * per_param * n
        if not least <= size <= most:
            raise corrupt(snap.file(name), f"{snap.file('config.json')} describes a different model shape: "
                                           f"{per_param * n:,} numbers, which its {size:,} bytes cannot hold")
    return param_shapes(config)


def _take(tensors, shapes, prefix, path):
    """{name: rows} for every parameter, checking each tensor's presence, shape and values."""
    out = {}
    for name, shape in shapes:
        if prefix + name not in tensors:
            raise MicroGPTError(f"checkpoint file {path} has no tensor {prefix + name!r}: "
                                f"it is not a microgpt checkpoint of this model; {FIX}")
        got_shape, flat = tensors[prefix + name]
        if list(got_shape) != list(shape):
            raise MicroGPTError(f"checkpoint tensor {prefix + name!r} in {path} has shape {got_shape} but the "
                                f"model config says {shape}: the checkpoint is of a different model shape; {FIX}")
        if not _all_finite(flat):
            raise corrupt(path, f"tensor {prefix + name!r} holds NaN or infinite values")
        if len(flat) and max(max(flat), -min(flat)) > MAX_MAGNITUDE:
            raise corrupt(path, f"tensor {prefix + name!r} holds a value of absurd size, "
                                f"{max(max(flat), -min(flat)):.3g}: damaged, or from a run that diverged")
        if prefix == "v." and len(flat) and min(flat) < 0:
            raise corrupt(path, f"tensor {prefix + name!r}, Adam's mean of squared gradients, holds negative values")
        out[name] = _rows(shape, flat)
    return out


def _all_finite(flat):
    # a sum of finite floats is finite unless it overflows, and NaN or an infinity make it non-finite:
    # one C-speed pass, and a second one only for the rare sum that overflowed
    return math.isfinite(sum(flat)) or all(map(math.isfinite, flat))


def load_weights(path, config):
    """{name: rows} from one safetensors file of weights (as model.safetensors), checked as a
    checkpoint's are (the RL run's copy of its starting weights)."""
    shapes = param_shapes(config)
    limit = 8 + _header_allowance(len(shapes)) + 8 * sum(n * m for _, (n, m) in shapes)
    try:
        if os.path.getsize(path) > limit:
            raise corrupt(path, f"more than the {limit:,} bytes such a file can need")
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MicroGPTError(f"weights file {path} is missing: start the run again") from None
    except OSError as e:
        raise MicroGPTError(f"cannot read weights file {path} ({e.strerror}): check the file and the disk") from None
    tensors = safetensors.loads(raw, what=f"weights file {path}", fix="start the run again",
                                max_header=_header_allowance(len(shapes)))[0]
    return _take(tensors, shapes, "", path)
