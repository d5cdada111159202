"""load(): a checkpoint read from a run folder, every file checked before it is trusted."""

import os
import time

from microgpt import jsonfile, safetensors
from microgpt.checkpoint import checks
from microgpt.checkpoint.layout import CKPT, FIX, MAX_JSON_BYTES, corrupt, header_allowance
from microgpt.checkpoint.snapshot import Snapshot, Swapped
from microgpt.errors import MicroGPTError
from microgpt.params import param_shapes


class Checkpoint:
    """What load() returns, every part checked (any engine can be built from it): the RunConfig
    the run was saved with (`run_config`: its stage, model, train, engine, data, rl ... sections),
    the tokenizer, weights, optimizer state (or None), run state (step, tokens, elapsed, the
    random stream's state) and the raw config.json (its "data", "command", "resumed" sections)."""

    def __init__(self, path, raw_config, run_config, tokenizer, weights, optimizer, state, stamp=None):
        self.path, self.raw_config, self.run_config = path, raw_config, run_config
        self.tokenizer, self.weights, self.optimizer, self.state = tokenizer, weights, optimizer, state
        self.stamp = stamp  # which checkpoint folder this was (a save swaps in a new one): see stamp()

    config = property(lambda self: self.run_config.model, doc="the model's GPTConfig")
    train = property(lambda self: self.run_config.train, doc="the TrainConfig it was trained with")
    engine = property(lambda self: self.run_config.engine, doc="the EngineConfig it was trained with")
    stage = property(lambda self: self.run_config.stage, doc="what made it: pretrain, sft or rl")
    step = property(lambda self: self.state["step"], doc="the steps it has trained")


def load(run_dir, with_optimizer=True, attempts=5):
    """The checkpoint of a run, every file checked (see the module's docstring). A writer may be
    swapping in a new one while we read: then read again (the swap takes microseconds)."""
    for attempt in range(attempts):
        try:
            return _load(run_dir, with_optimizer)
        except Swapped:
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
    with Snapshot(path, names) as snap:
        cfg = _json(snap, "config.json")
        run_config, tokenizer = checks.check_config(cfg, snap.file("config.json"), snap.size("config.json"), run_dir)
        state = checks.check_state(_json(snap, "state.json"), run_config.train, snap.file("state.json"))
        shapes = checks.check_sizes(snap, run_config.model)
        weights = checks.take(_tensors(snap, "model.safetensors", len(shapes)), shapes, "",
                              snap.file("model.safetensors"))
        optimizer = None
        if with_optimizer and snap.present("optimizer.safetensors"):
            tensors = _tensors(snap, "optimizer.safetensors", 2 * len(shapes))
            optimizer = {k: checks.take(tensors, shapes, f"{k}.", snap.file("optimizer.safetensors"))
                         for k in ("m", "v")}
        here = snap.stamp()
    return Checkpoint(path, cfg, run_config, tokenizer, weights, optimizer, state, here)


def stamp(run_dir):
    """Which checkpoint folder `run_dir` holds now: a save swaps in a new folder, so a Checkpoint
    whose .stamp differs was read before a save (None: there is none)."""
    for name in (CKPT, f".{CKPT}.old"):
        try:
            st = os.stat(os.path.join(run_dir, name))
        except OSError:
            continue
        return (st.st_dev, st.st_ino)
    return None


def load_config(run_dir):
    """The RunConfig a run was saved with: derive another from it (dataclasses.replace, or
    config.changed) and continue the run with Run(config, resume=True)."""
    return load(run_dir, with_optimizer=False).run_config


def _json(snap, name):
    path = snap.file(name)
    return jsonfile.loads(snap.read(name, MAX_JSON_BYTES[name]), lambda why: corrupt(path, why))


def _tensors(snap, name, n_tensors):
    return safetensors.loads(snap.read(name, snap.size(name)), what=f"checkpoint file {snap.file(name)}", fix=FIX,
                             max_header=header_allowance(n_tensors))[0]


def load_weights(path, config):
    """{name: rows} from one safetensors file of weights (as model.safetensors), checked as a
    checkpoint's are (the RL run's copy of its starting weights)."""
    shapes = param_shapes(config)
    limit = 8 + header_allowance(len(shapes)) + 8 * sum(n * m for _, (n, m) in shapes)
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
                                max_header=header_allowance(len(shapes)))[0]
    return checks.take(tensors, shapes, "", path)
