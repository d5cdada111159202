"""The training loop every stage shares: data -> engine.train_step -> log / evaluate / checkpoint.

It knows no stage. A stage (microgpt.stages) subclasses TrainingRun and fills in what differs:
`read_data()` and `make_dataset(ckpt)` (what it trains on), `initial_weights()` (where a new run
starts), `batch(step)` (a step's sequences and their per-token weights), `evaluate_now()` (the
held-out figures) and `log_fields`. The rest -- the run folder and its lock, resuming from the
checkpoint, the random stream, distributed processes, signals, metrics.jsonl -- is here, once.
"""

import math
import os
import random
import signal
import sys
import time
from dataclasses import replace

from microgpt import checkpoint
from microgpt.config import learning_rate
from microgpt.engines import get_engine, normalized
from microgpt.errors import MicroGPTError, math_overflow
from microgpt.lock import RunLock
from microgpt.params import num_params
from microgpt.train.continuation import STABLE, continue_from, is_decay_start
from microgpt.train.metrics import MetricsLog, Window
from microgpt.train.signals import StopSignals


class TrainingRun:
    """One training run in config.out: new (an existing run there is refused unless overwrite),
    or resumed from its checkpoint (resume=True; `ckpt` = that checkpoint if the caller has
    read it already, so it is read once)."""

    log_fields = (("train_loss", "loss"), ("val_loss", "val"), ("val_bpb", "val bpb"))
    loss_key = "train_loss"  # what the step's loss is logged as (RL logs its surrogate as pg_loss)
    evaluate_first = False  # evaluate (and log "step 0") before the first step of a new run

    def __init__(self, config, resume=False, overwrite=False, allow_data_change=False, command=None,
                 ckpt=None):
        self.cfg = config = replace(config, engine=normalized(config.engine),
                                    out=config.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S")))
        config.validate()
        self.out, self.resume, self.overwrite = config.out, resume, overwrite
        self.command, self.resumed = command, []  # the command that started it, those that continued it
        self.engine = get_engine(config.engine.name)
        self._join_processes()
        ckpt = self._resume_from(ckpt) if resume else None
        if ckpt is None and checkpoint.exists(self.out) and not overwrite:
            raise MicroGPTError(f"{self.out} already holds a run: pass --resume to continue it, "
                                f"--overwrite to replace it, or another --out")
        self.rng = random.Random(config.train.seed)  # one stream, in the seed's order: shuffle, init, sampling
        self.data = self.read_data()
        if ckpt and self.data and not allow_data_change:
            self._check_data(ckpt)
        self.ds = self.make_dataset(ckpt)
        self.config = replace(config.model, vocab_size=self.ds.tokenizer.vocab_size).validate()
        self.cfg = replace(self.cfg, model=self.config)
        if ckpt:
            weights, self.state = ckpt.weights, ckpt.state
            checkpoint.rng_state_from_json(self.rng, ckpt.state["rng_state"])
        else:
            weights, self.state = self.initial_weights(), {"step": 0}
        self.state.setdefault("tokens", 0)
        self.state.setdefault("elapsed", 0.0)
        self.model = self.engine.Model(self.config, weights, config.engine)
        self.model.check_training(config.train)
        if ckpt and ckpt.optimizer:
            self.model.set_optimizer_state(ckpt.optimizer)
        self.last_saved = self.state["step"] if ckpt else None

    # ------------------------------------------------------------------ setting up

    def _join_processes(self):
        world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun; checked before joining the others
        if self.cfg.train.batch_size % world:  # each process trains on an equal slice of the global batch
            raise MicroGPTError(f"--batch-size {self.cfg.train.batch_size} cannot be split evenly across {world} "
                                f"processes: use a multiple of {world}")
        self.rank, self.world_size = self.engine.Model.setup_distributed(self.cfg.engine)
        self.is_main = self.rank == 0
        self.lock = RunLock(self.out) if self.is_main else None

    def _resume_from(self, ckpt):
        if not checkpoint.exists(self.out):
            raise MicroGPTError(f"no checkpoint in {self.out} to resume: train one first, or drop --resume")
        self._lock()
        if ckpt is None or ckpt.stamp != checkpoint.stamp(self.out):  # (read before a save we now hold off)
            ckpt = checkpoint.load(self.out)
        self._check_resume(ckpt)
        ckpt = continue_from(self.out, ckpt, self.cfg.train, self.note)
        self.resumed = list(ckpt.raw_config.get("resumed") or []) + ([self.command] if self.command else [])
        self.command = ckpt.raw_config.get("command", self.command)
        return ckpt

    def _check_resume(self, ckpt):
        for k in ("n_layer", "n_embd", "n_head", "block_size"):
            if getattr(self.cfg.model, k) != getattr(ckpt.config, k):
                raise MicroGPTError(f"--{k.replace('_', '-')} {getattr(self.cfg.model, k)} does not match the "
                                    f"checkpoint's {k} {getattr(ckpt.config, k)}: drop it to resume, "
                                    f"or train a new run")
        if ckpt.step >= self.cfg.train.steps:
            raise MicroGPTError(f"the checkpoint in {self.out} is already at step {ckpt.step}: "
                                f"pass a larger --steps to train further")
        for k in ("seed", "data_mode", "val_frac"):  # these decide the data order: changing them breaks the run
            if getattr(ckpt.train, k) != getattr(self.cfg.train, k):
                raise MicroGPTError(f"--{k.replace('_', '-')} {getattr(self.cfg.train, k)} differs from the "
                                    f"checkpoint's {getattr(ckpt.train, k)}: resume with the same one")

    def _check_data(self, ckpt):
        saved = (ckpt.raw_config.get("data") or {}).get("sha256")
        if saved and saved != self.data.sha256:
            raise MicroGPTError(f"the data file {self.data.path} changed since this run began (SHA-256 "
                                f"{saved[:16]}... then, {self.data.sha256[:16]}... now): restore it, or "
                                f"pass --allow-data-change to continue on the new content")

    def _lock(self):
        if self.lock is not None and self.lock.fd is None:
            self.lock.acquire()

    def note(self, msg):
        """A remark on the data, once, on standard error."""
        if self.is_main and not self.cfg.quiet:
            print(f"note: {msg}", file=sys.stderr)

    def log(self, msg):
        if self.is_main and not self.cfg.quiet:
            print(msg, flush=True)

    # ------------------------------------------------------------------ what a stage fills in

    def read_data(self):
        """The run's data file (a files.DataFile), or None for a stage that reads none."""
        raise NotImplementedError

    def make_dataset(self, ckpt):
        """The dataset (with its .tokenizer) the steps draw from; `ckpt` when resuming."""
        raise NotImplementedError

    def initial_weights(self):
        """{name: rows}: where a new run starts."""
        raise NotImplementedError

    def batch(self, step):
        """(this process's sequences, their per-token weights or None for the plain mean, extra metrics)."""
        raise NotImplementedError

    def evaluate_now(self):
        """The held-out figures recorded at an evaluation step, {name: number}."""
        return {}

    def my_share(self, items):
        per = len(items) // self.world_size
        return items[self.rank * per:(self.rank + 1) * per]

    # ------------------------------------------------------------------ training

    def train(self):
        """Train to config.train.steps (or stop_after); True when the schedule is complete."""
        start, end = self._begin()
        self.t0, self.elapsed0 = time.time(), self.state["elapsed"]
        metrics = None
        try:
            metrics = MetricsLog(self.out, start, self.cfg.tensorboard) if self.is_main else None
            with StopSignals(self.world_size, self.log) as self.stop_signals:
                end = self._loop(start, end, metrics)
            self.together(self.save)
        finally:
            if metrics:
                metrics.close()
            if self.lock is not None:
                self.lock.release()
        self.log(f"trained {end - start} steps in {time.time() - self.t0:.1f}s; checkpoint saved in {self.out}"
                 + ("" if end == self.cfg.train.steps else "; continue with --resume"))
        return end == self.cfg.train.steps

    def _begin(self):
        cfg = self.cfg
        start, end = self.state["step"], min(cfg.train.steps, cfg.stop_after or cfg.train.steps)
        if end <= start:
            if self.lock is not None:
                self.lock.release()  # (a resumed run holds it since __init__)
            raise MicroGPTError(f"--stop-after {end} is not past the checkpoint's step {start}")
        if self.is_main:
            self._lock()
            if not self.resume and checkpoint.exists(self.out) and not self.overwrite:
                self.lock.release()
                raise MicroGPTError(f"{self.out} already holds a run: pass --resume to continue it, "
                                    f"--overwrite to replace it, or another --out")
        self.log(f"data: {self.ds.describe()}")
        self.log(f"model: {num_params(self.config):,} parameters, {self.config.n_layer} layer(s), "
                 f"n_embd {self.config.n_embd}, {self.config.n_head} heads, block {self.config.block_size}; "
                 f"engine {cfg.engine.name} ({self.model.description})")
        return start, end

    def _loop(self, start, end, metrics):
        """The steps from `start` to `end`; returns the step it ended at."""
        if self.evaluate_first and start == 0 and self.cfg.eval_every:  # where training starts from
            self._record(metrics, {"step": 0, **self.evaluate_now(), "lr": learning_rate(self.cfg.train, 0),
                                   "tokens": 0, "tokens_per_s": 0.0, "elapsed": 0.0}, eta=float("nan"))
        window = Window()
        for step in range(start, end):
            lr = learning_rate(self.cfg.train, step)
            self._step(step, lr, window)
            done = step + 1
            out_of_time = self.cfg.time_limit is not None and time.time() - self.t0 >= self.cfg.time_limit
            stop = self.model.any_rank(self.stop_signals.signum is not None or out_of_time)
            val = {}
            if self.cfg.eval_every and (done % self.cfg.eval_every == 0 or done == end
                                        or (stop and self.stop_signals.signum is None)):  # the end, or out of time
                val = self.evaluate_now()
            if done % self.cfg.log_every == 0 or done == end or val or stop:
                self._record(metrics, {"step": done, **window.means(), **val, "lr": lr, "tokens": self.state["tokens"],
                                       "tokens_per_s": round(window.tokens_per_s(), 1),
                                       "elapsed": self.state["elapsed"]}, eta=self._eta(start, done))
                window = Window()
            if self.cfg.checkpoint_every and done % self.cfg.checkpoint_every == 0 and done < end:
                self.together(self.save)
            if is_decay_start(self.cfg.train, done):
                self.together(self.save, os.path.join(self.out, STABLE))
            if stop and self.model.any_rank(self.stop_signals.signum is not None):  # (every rank asks: a collective)
                self.together(self.save)
                self.log(f"saved checkpoint at step {done} in {self.out}; continue with --resume")
                raise SystemExit(128 + (self.stop_signals.signum or signal.SIGINT))
            if stop:  # --time-limit: an early end, like --stop-after
                return done
        return end

    def _step(self, step, lr, window):
        """One training step: the batch, forward, backward, update; its figures go into `window`."""
        seqs, weights, extra = self.batch(step)
        t_step = time.time()
        try:
            loss = self.model.train_step(seqs, lr, step + 1, self.cfg.train, weights)
        except (OverflowError, ValueError) as e:
            if not math_overflow(e):
                raise
            loss = math.inf  # (stops the run below, as any loss that is not finite)
        n_tokens = sum(len(s) - 1 for s in seqs) * self.world_size
        window.add(time.time() - t_step, n_tokens, **{self.loss_key: loss}, **extra, **self.model.step_info())
        if not math.isfinite(loss):
            kept = (f"the last good checkpoint (step {self.last_saved}) is kept in {self.out}"
                    if self.last_saved is not None else "no checkpoint had been saved yet")
            raise MicroGPTError(f"loss became {loss} at step {step + 1}: training stopped and {kept}; "
                                f"lower --lr or check the data")
        self.state.update(step=step + 1, tokens=self.state["tokens"] + n_tokens,
                          elapsed=round(self.elapsed0 + time.time() - self.t0, 3))

    def _eta(self, start, done):
        spent = time.time() - self.t0
        eta = spent / (done - start) * (self.cfg.train.steps - done)
        if self.cfg.time_limit is not None:
            eta = min(eta, max(0.0, self.cfg.time_limit - spent))
        return eta

    def _record(self, metrics, record, eta):
        self.log(self._log_line(record, eta))
        self.together(metrics and metrics.write, record)  # (metrics: the main process's)

    def _log_line(self, record, eta):
        msg = f"step {record['step']:4d} / {self.cfg.train.steps:4d}"
        for key, label in self.log_fields:
            if key in record:
                msg += f" | {label} {record[key]:.4f}"
        if record["step"]:
            msg += f" | {record['tokens_per_s']:,.0f} tok/s | eta {eta:.0f}s"
        if "graph_nodes" in record:
            msg += f" | graph {record['graph_nodes']:,.0f} nodes {record['graph_edges']:,.0f} edges"
        return msg

    def together(self, write, *args):
        """Run the main process's `write` (a checkpoint, a metrics line) and, when several processes
        train together, let all of them know whether it failed: then every one stops, the main one
        with its one-line error, the others quietly (else they would wait for it in the next step's
        all-reduce, then crash with a traceback of their own)."""
        failure = None
        if write is not None and self.is_main:
            try:
                write(*args)
            except MicroGPTError as e:
                failure = e
        if self.world_size > 1 and self.model.any_rank(failure is not None) and failure is None:
            raise SystemExit(2)
        if failure is not None:
            raise failure

    def save(self, run_dir=None):
        """Write the checkpoint (the main process only) into the run folder, or `run_dir`."""
        if not self.is_main:
            return
        state = {**self.state, "rng_state": checkpoint.rng_state_to_json(self.rng)}
        checkpoint.save(run_dir or self.out, weights=self.model.get_weights(),
                        optimizer=self.model.get_optimizer_state(), config=self.config,
                        tokenizer=self.ds.tokenizer, state=state,
                        meta=checkpoint.sections(self.cfg, self.data, self.command, self.resumed),
                        dtype=self.model.safetensors_dtype)
        if run_dir is None:
            self.last_saved = self.state["step"]
