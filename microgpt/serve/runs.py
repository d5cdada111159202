"""The runs a server serves: each opened once, and opened again when its checkpoint is rewritten.

`open_served` is the one place this package opens a run (microgpt.stages.open.open_run). What
the server needs of a run is gathered into a `Served`: the engine's model (KV-cache generation),
the tokenizer, the model config, whether it is a chat model, the step it was saved at, and a
float64 numpy model for the attention maps (built when first asked for: microgpt.pictures.attention does the work).

A checkpoint is swapped in by renames (microgpt.checkpoint), so `signature` (the identity of
RUN/checkpoint and its state.json) changes exactly when a new one is in place; loading it again
reads one whole checkpoint, never half of two (checkpoint.load retries a read a swap disturbed).
"""

import os
import threading
import time
import types

from microgpt.errors import MicroGPTError
from microgpt.stages.open import open_run


def open_served(path, name, engine=None, weights=None):
    """A Served of the run in `path` (with the weights in the file `weights`, if given): the only call
    into the run-opening API."""
    sig = signature(path)
    run = open_run(path, engine=engine, weights=weights)
    mode = run.cfg.train.data_mode
    return Served(name=name, path=path, model=run.model, tokenizer=run.tokenizer, config=run.config,
                  mode=mode, step=int(run.state.get("step", 0)), engine=run.cfg.engine.name, signature=sig)


def signature(path):
    """What changes when a new checkpoint is swapped into RUN/checkpoint (None: there is none)."""
    ckpt = os.path.join(path, "checkpoint")
    try:
        a, b = os.stat(ckpt), os.stat(os.path.join(ckpt, "state.json"))
    except OSError:
        return None
    return (a.st_ino, a.st_mtime_ns, b.st_ino, b.st_mtime_ns, b.st_size)


class Served:
    """One run as the server sees it. Immutable once made (but for its scheduler): a reload makes a
    new one, and a request keeps the one it started with."""

    def __init__(self, name, path, model, tokenizer, config, mode, step, engine, signature):
        self.name, self.path, self.model, self.tokenizer, self.config = name, path, model, tokenizer, config
        self.mode, self.step, self.engine, self.signature = mode, step, engine, signature
        self.chat = mode == "chat"
        self.block_size = config.block_size
        self.created = int(time.time())
        self._attention_model, self._lock = None, threading.Lock()
        self.scheduler = None  # the loop that steps this model's requests (serve/scheduler.py), made when first asked
        self.retired = False  # a reload replaced it: its scheduler stops once its requests are done
        self._pieces = {}

    def retire(self):
        self.retired = True
        if self.scheduler is not None:  # (app.py checks `retired` again after making one: no race leaves it on)
            self.scheduler.retire()

    def piece(self, token):
        """tokenizer.piece(token), remembered (a streamed token's logprobs name six pieces)."""
        got = self._pieces.get(token)
        if got is None:
            got = self._pieces[token] = self.tokenizer.piece(token)
        return got

    def attention_model(self):
        """A float64 numpy-engine model of the same weights (the pictures' attention maps)."""
        with self._lock:
            if self._attention_model is None:
                from microgpt.pictures.attention import numpy_model
                weights = self.model.get_weights()
                self._attention_model = numpy_model(types.SimpleNamespace(config=self.config, weights=weights))
            return self._attention_model

    def info(self):
        c = self.config
        return {"id": self.name, "kind": "chat" if self.chat else "base", "data_mode": self.mode,
                "step": self.step, "engine": self.engine, "block_size": c.block_size, "n_layer": c.n_layer,
                "n_head": c.n_head, "n_embd": c.n_embd, "vocab_size": self.tokenizer.vocab_size}


def run_names(paths):
    """Model ids: each run folder's name, or parent/name where two share a name."""
    from microgpt.pictures.curves import run_names as names
    out = names(paths)
    if len(set(out)) < len(out):
        raise MicroGPTError("two --out runs have the same name: serve each run folder once")
    return out


class Runs:
    """The served runs by model id; with reload, each is opened again when its checkpoint changes."""

    def __init__(self, paths, engine=None, reload=False, log=print):
        self.engine, self.reload, self.log = engine, reload, log
        for p in paths:
            if not os.path.isdir(p):
                raise MicroGPTError(f"--out {p}: no such run folder; train a run there first")
        self.by_name = {n: open_served(p, n, engine) for p, n in zip(paths, run_names(paths))}
        self._checked, self._failed = 0.0, {}

    def get(self, name):
        return self.by_name.get(name)

    def __iter__(self):
        return iter(list(self.by_name.values()))

    def refresh(self, min_interval=0.5):
        """With reload: open again each run whose checkpoint changed since it was opened (at most
        once per min_interval seconds). A checkpoint that cannot be read keeps the old model."""
        now = time.monotonic()
        if not self.reload or now - self._checked < min_interval:
            return
        self._checked = now
        for name, served in list(self.by_name.items()):
            sig = signature(served.path)
            if sig is None or sig == served.signature:
                continue
            try:
                new = open_served(served.path, name, self.engine)
            except (MicroGPTError, OSError) as e:  # (a folder made unreadable meanwhile: keep serving)
                if self._failed.get(name) != sig:  # said once per checkpoint, not at every look
                    self.log(f"note: {served.path}: kept the model of step {served.step} ({e})")
                self._failed[name] = sig
                continue
            self.by_name[name] = new
            served.retire()  # (its scheduler finishes the requests it has, then stops)
            self.log(f"reloaded {name}: step {served.step} -> {new.step}")


def default_stream_prompt(tokenizer):
    """Where a sample of a run on continuous text starts when given no prompt (as `microgpt sample`)."""
    from microgpt.generate import default_stream_prompt as first_text
    return first_text(tokenizer)
