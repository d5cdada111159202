"""A training run: its directory, data, model and random stream, and the loop every engine shares.

    run = Run(RunConfig(out="runs/demo", train=TrainConfig(steps=300)))
    run.train()                  # log, evaluate, checkpoint; resumable, Ctrl-C / SIGTERM safe
    run.sample(5)                # -> five new names
    run.evaluate()               # -> {"train": {"loss", "bpb", ...}, "val": {...}}
    Run.open("runs/demo")        # an existing run, to sample or evaluate

The loop is data -> engine.train_step -> log / evaluate / checkpoint. What a step trains on
comes from `batch(step)`, which post-training runs override; the rest is the same for all.
"""

import contextlib
import json
import math
import os
import random
import signal
import sys
import time

from microgpt import MicroGPTError, checkpoint, tokenizers
from microgpt.config import EngineConfig, RunConfig, learning_rate
from microgpt.data import Dataset, atomic_write_bytes, read_data, target_bytes
from microgpt.engines import get_engine
from microgpt.init import init_weights, num_params
from microgpt.lock import RunLock
from microgpt.sample import generate


def _log0_message():
    try:
        math.log(0.0)
    except ValueError as e:
        return str(e)  # ("math domain error"; each Python version words it its own way)


LOG0 = _log0_message()


def math_overflow(e):
    """Whether an exception is the python engine's float math meeting weights that have diverged
    (log(0) in the loss, a power that overflows), where array engines would give inf or NaN."""
    return isinstance(e, OverflowError) or (isinstance(e, ValueError) and str(e) == LOG0)


def rng_state_to_json(rng):
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def rng_state_from_json(rng, state):
    try:
        version, internal, gauss_next = state
        rng.setstate((version, tuple(internal), gauss_next))
    except (TypeError, ValueError, OverflowError):
        raise MicroGPTError("the checkpoint's random-stream state (state.json rng_state) is corrupt: "
                            "train again or restore the checkpoint") from None


class RunBase:
    """What a run with a model can do: sample, mark samples, evaluate. Subclasses set self.cfg,
    self.config, self.model, self.rng and self.ds (its .tokenizer, splits and texts)."""

    def sample(self, num=20, temperature=0.5, top_k=0, prompt="", max_new_tokens=None, seed=None):
        """New documents (docs mode: until BOS, as the seed) or continuations of text (stream
        mode). Without a seed they are drawn from the run's own random stream: right after
        training, the seed's samples; from a saved run, the ones its training run printed."""
        if self.cfg.train.data_mode == "chat":  # a chat model (sft, rl) answers instead
            return [reply for _, reply, _ in self.answers(num, temperature, top_k, prompt, max_new_tokens, seed)]
        rng = self.rng if seed is None else random.Random(seed)
        return sample_texts(self.model, self.tokenizer, self.config, self.cfg.train.data_mode, rng,
                            num, temperature, top_k, prompt, max_new_tokens)

    def answers(self, num=20, temperature=0.5, top_k=0, prompt="", max_new_tokens=None, seed=None):
        """A chat model's replies, [(question, reply, mark)]: `num` replies to `prompt`, or without
        one a reply to each of up to `num` held-out questions: the test problems of the run's task
        (`rl --task`, `--eval-task`), marked "right" or "wrong", else the first question of each
        validation conversation, marked "in val" when the reply is the one written there, else "new"."""
        from microgpt.chat import replies
        from microgpt.chat_template import render_prompt
        rng = self.rng if seed is None else random.Random(seed)
        asked = [([{"role": "user", "content": prompt}], None)] * num if prompt else self.held_out_questions(num)
        prompts = [render_prompt(self.tokenizer, messages) for messages, _ in asked]
        got = replies(self.model, self.tokenizer, self.config.block_size, prompts, rng, temperature, top_k,
                      max_new_tokens)
        return [(messages[-1]["content"], reply, mark(reply) if mark else "")
                for (messages, mark), reply in zip(asked, map(self.tokenizer.decode, got))]

    def held_out_questions(self, num):
        """Up to `num` (messages ending with a user's, mark) pairs a chat model has not trained on;
        mark(reply) says how a reply fares (see answers)."""
        from microgpt.tasks import get_task
        name = self.cfg.rl.task or self.cfg.eval_task
        task = get_task(name) if name else None
        if task is not None and task.chat:
            problems = task.problems("test", num if task.has_problems("test", num) else task.max_problems("test"))
            return [(task.conversation(p)["messages"][:1],
                     lambda reply, p=p: "right" if task.is_correct(p, reply) else "wrong") for p in problems]
        out = []
        for conv in self.ds.val_conversations[:num]:
            messages = conv["messages"]
            first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
            written = messages[first]["content"]
            out.append((messages[:first], lambda reply, w=written: "in val" if reply == w else "new"))
        return out

    def mark(self, text):
        """Where a sampled document comes from: "in train", "in val" or "new"."""
        return "in train" if text in self.ds.train_text else "in val" if text in self.ds.val_text else "new"

    def evaluate(self, max_docs=1000):
        """Loss (nats per token) and bits per byte of the train and validation splits."""
        return {split: self.evaluate_split(split, max_docs) for split in ("train", "val")}

    def evaluate_split(self, split, max_seqs=0, batch_size=64):
        """The mean loss per target token (nats) and bits per byte over a split; for conversations,
        over the assistant's tokens only (what fine-tuning trains)."""
        pairs = self.ds.eval_pairs(split, max_seqs)  # (tokens, mask or None for every target)
        total, n, nbytes = 0.0, 0, 0
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i:i + batch_size]
            try:
                batch_losses = self.model.token_losses([s for s, _ in chunk])
            except (OverflowError, ValueError) as e:
                if not math_overflow(e):
                    raise
                batch_losses = [[math.inf] * (len(s) - 1) for s, _ in chunk]
            for losses, (seq, mask) in zip(batch_losses, chunk):
                for t, loss in enumerate(losses):
                    if mask is None or mask[t + 1]:
                        total += loss
                        n += 1
                        nbytes += target_bytes(self.tokenizer, seq[t + 1])
        return {"loss": total / n if n else float("nan"),
                "bpb": total / math.log(2) / nbytes if nbytes else float("nan"),
                "tokens": n, "sequences": len(pairs)}


class Run(RunBase):
    """One run. `Run(config)` starts a new one in config.out (an existing run there is refused
    unless overwrite=True); `Run(config, resume=True)` continues it from its checkpoint
    (`RunConfig.load(out)` gives the config it was saved with)."""

    log_fields = (("train_loss", "loss"), ("val_loss", "val"), ("val_bpb", "val bpb"))
    loss_key = "train_loss"  # what the step's loss is logged as (RL logs its surrogate as pg_loss)
    evaluate_first = False  # evaluate (and log "step 0") before the first step of a new run

    def __init__(self, config, resume=False, overwrite=False, allow_data_change=False, command=None):
        self.cfg, tc = config.validate(), config.train
        self.out = config.out or os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
        self.resume, self.overwrite = resume, overwrite
        self.command = command  # the command line that started it (None: from Python)
        self.resumed = []       # ...and the ones that continued it, in order
        self.engine = get_engine(config.engine.name)
        world = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun; checked before joining the others
        if tc.batch_size % world:  # each process trains on an equal slice of the global batch
            raise MicroGPTError(f"--batch-size {tc.batch_size} cannot be split evenly across {world} "
                                f"processes: use a multiple of {world}")
        self.rank, self.world_size = self.engine.Model.setup_distributed(config.engine)
        self.is_main = self.rank == 0
        self.lock = RunLock(self.out) if self.is_main else None
        ckpt = None
        if resume:
            if not checkpoint.exists(self.out):
                raise MicroGPTError(f"no checkpoint in {self.out} to resume: train one first, or drop --resume")
            self._lock()
            ckpt = checkpoint.load(self.out)
            self._check_resume(ckpt)
            self.resumed = list(ckpt.raw_config.get("resumed") or []) + ([command] if command else [])
            self.command = ckpt.raw_config.get("command", command)
        elif checkpoint.exists(self.out) and not overwrite:
            raise MicroGPTError(f"{self.out} already holds a run: pass --resume to continue it, "
                                f"--overwrite to replace it, or another --out")
        self.rng = random.Random(tc.seed)  # one stream, in the seed's order: shuffle, init, sampling
        self.data = self.read_data()
        if ckpt and self.data and not allow_data_change:
            saved = (ckpt.raw_config.get("data") or {}).get("sha256")
            if saved and saved != self.data.sha256:
                raise MicroGPTError(f"the data file {self.data.path} changed since this run began (SHA-256 "
                                    f"{saved[:16]}... then, {self.data.sha256[:16]}... now): restore it, or "
                                    f"pass --allow-data-change to continue on the new content")
        self.ds = self.make_dataset(ckpt)
        config.model.vocab_size = self.ds.tokenizer.vocab_size
        self.config = config.model.validate()
        if ckpt:
            weights, self.state = ckpt.weights, ckpt.state
            rng_state_from_json(self.rng, ckpt.state["rng_state"])
        else:
            weights, self.state = self.initial_weights(), {"step": 0}
        self.state.setdefault("tokens", 0)
        self.state.setdefault("elapsed", 0.0)
        self.model = self.engine.Model(self.config, weights, config.engine)
        self.model.check_training(tc)
        if ckpt and ckpt.optimizer:
            self.model.set_optimizer_state(ckpt.optimizer)
        self.last_saved = self.state["step"] if ckpt else None
        self._stop = None  # the signal that asked us to stop

    # ------------------------------------------------------------------ setting up

    def make_dataset(self, ckpt):
        cfg, tc = self.cfg, self.cfg.train
        tokenizer = ckpt.tokenizer if ckpt else None
        if tokenizer is None and cfg.tokenizer not in ("char", "bpe"):
            tokenizer = tokenizers.load_file(cfg.tokenizer)
        ds = Dataset(self.data.text, tc.data_mode, cfg.model.block_size, tc.val_frac, self.rng,
                     tokenizer=tokenizer, bpe_vocab_size=cfg.vocab_size if tokenizer is None else None)
        if ds.n_truncated:
            self.note(f"{ds.n_truncated} documents are longer than block_size - 1 = {cfg.model.block_size - 1} "
                      f"tokens; they are cut to block_size tokens (as the seed does)")
        self.note_tokenizer(ds.tokenizer)
        return ds

    def note(self, msg):
        """A remark on the data, once, on standard error."""
        if self.is_main and not self.cfg.quiet:
            print(f"note: {msg}", file=sys.stderr)

    def note_tokenizer(self, tokenizer):
        if getattr(tokenizer, "stopped_early", False):
            self.note(f"the text ran out of pairs to merge before --vocab-size {self.cfg.vocab_size}: the BPE "
                      f"tokenizer has {tokenizer.vocab_size} tokens (digits are never merged: one token each)")

    def read_data(self):
        """The run's data file (the names data set when none is given)."""
        return read_data(self.cfg.data)

    def initial_weights(self):
        """The weights a new run starts from: the seeded initialisation (the seed's order)."""
        return init_weights(self.config, self.rng)

    def _check_resume(self, ckpt):
        for k in ("n_layer", "n_embd", "n_head", "block_size"):
            if getattr(self.cfg.model, k) != getattr(ckpt.config, k):
                raise MicroGPTError(f"--{k.replace('_', '-')} {getattr(self.cfg.model, k)} does not match the "
                                    f"checkpoint's {k} {getattr(ckpt.config, k)}: drop it to resume, "
                                    f"or train a new run")
        saved = ckpt.train
        if ckpt.step >= self.cfg.train.steps:
            raise MicroGPTError(f"the checkpoint in {self.out} is already at step {ckpt.step}: "
                                f"pass a larger --steps to train further")
        for k in ("seed", "data_mode", "val_frac"):  # these decide the data order: changing them breaks the run
            if getattr(saved, k) != getattr(self.cfg.train, k):
                raise MicroGPTError(f"--{k.replace('_', '-')} {getattr(self.cfg.train, k)} differs from the "
                                    f"checkpoint's {getattr(saved, k)}: resume with the same one")

    def _lock(self):
        if self.lock is not None and self.lock.fd is None:
            self.lock.acquire()

    @classmethod
    def open(cls, out, engine=None, **engine_options):
        """An existing run, to sample from or evaluate (no training, no lock: readers never see
        a half-written checkpoint). It keeps the engine and dtype that trained it unless told."""
        return OpenRun(out, engine, engine_options)

    # ------------------------------------------------------------------ training

    def batch(self, step):
        """(this process's sequences, their weights or None for the plain mean, extra metrics)."""
        seqs = self.ds.train_batch(step, self.cfg.train.batch_size, self.cfg.train.seed)
        return self.my_share(seqs), None, {}

    def my_share(self, items):
        per = len(items) // self.world_size
        return items[self.rank * per:(self.rank + 1) * per]

    def evaluate_now(self):
        """The validation figures recorded at an evaluation step."""
        if not self.ds.val:
            return {}
        val = self.evaluate_split("val", self.cfg.eval_docs)
        return {"val_loss": val["loss"], "val_bpb": val["bpb"]}

    def train(self):
        """Train to config.train.steps (or stop_after); True when the schedule is complete."""
        cfg, tc = self.cfg, self.cfg.train
        start = self.state["step"]
        end = min(tc.steps, cfg.stop_after or tc.steps)
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
        metrics, handlers = None, {}
        t0, elapsed0 = time.time(), self.state["elapsed"]
        window = Window()
        try:
            metrics = MetricsLog(self.out, start, cfg.tensorboard) if self.is_main else None
            handlers = self._catch_signals()
            if self.evaluate_first and start == 0 and cfg.eval_every:  # where training starts from
                record = {"step": 0, **self.evaluate_now(), "lr": learning_rate(tc, 0), "tokens": 0,
                          "tokens_per_s": 0.0, "elapsed": 0.0}
                self.log(self._log_line(record, float("nan")))
                self.together(metrics and metrics.write, record)
            for step in range(start, end):
                seqs, weights, extra = self.batch(step)
                lr = learning_rate(tc, step)
                t_step = time.time()
                try:
                    loss = self.model.train_step(seqs, lr, step + 1, tc, weights)
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
                done = step + 1
                self.state.update(step=done, tokens=self.state["tokens"] + n_tokens,
                                  elapsed=round(elapsed0 + time.time() - t0, 3))
                out_of_time = cfg.time_limit is not None and time.time() - t0 >= cfg.time_limit
                stop = self.model.any_rank(self._stop is not None or out_of_time)
                val = {}
                last = done == end or (stop and self._stop is None)  # the schedule's end, or out of time
                if cfg.eval_every and (done % cfg.eval_every == 0 or last):
                    val = self.evaluate_now()
                if done % cfg.log_every == 0 or done == end or val or stop:
                    record = {"step": done, **window.means(), **val, "lr": lr, "tokens": self.state["tokens"],
                              "tokens_per_s": round(window.tokens_per_s(), 1), "elapsed": self.state["elapsed"]}
                    eta = (time.time() - t0) / (done - start) * (tc.steps - done)
                    if cfg.time_limit is not None:
                        eta = min(eta, max(0.0, cfg.time_limit - (time.time() - t0)))
                    self.log(self._log_line(record, eta))
                    self.together(metrics and metrics.write, record)  # (metrics: the main process's)
                    window = Window()
                if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < end:
                    self.together(self.save)
                if stop and self.model.any_rank(self._stop is not None):  # (every rank asks: a collective)
                    self.together(self.save)
                    self.log(f"saved checkpoint at step {done} in {self.out}; continue with --resume")
                    raise SystemExit(128 + (self._stop or signal.SIGINT))
                if stop:  # --time-limit: an early end, like --stop-after
                    end = done
                    break
            self.together(self.save)
        finally:
            if metrics:
                metrics.close()
            self._restore_signals(handlers)
            if self.lock is not None:
                self.lock.release()
        self.log(f"trained {end - start} steps in {time.time() - t0:.1f}s; checkpoint saved in {self.out}"
                 + ("" if end == tc.steps else "; continue with --resume"))
        return end == tc.steps

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

    def log(self, msg):
        if self.is_main and not self.cfg.quiet:
            print(msg, flush=True)

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

    def save(self):
        """Write the checkpoint (the main process only)."""
        if not self.is_main:
            return
        cfg = self.cfg
        meta = {"train": cfg.train.to_dict(), "engine": cfg.engine.to_dict(),
                "run": {k: v for k, v in cfg.to_dict().items()  # (what a resume keeps; not this call's own)
                        if k not in ("model", "train", "engine", "data", "out", "stop_after", "time_limit",
                                     "quiet")},
                "data": {"path": os.path.abspath(self.data.path), "sha256": self.data.sha256,
                         "default": cfg.data is None} if self.data else None,
                "command": self.command, "resumed": self.resumed}
        state = {**self.state, "rng_state": rng_state_to_json(self.rng)}
        checkpoint.save(self.out, weights=self.model.get_weights(), optimizer=self.model.get_optimizer_state(),
                        config=self.config, tokenizer=self.ds.tokenizer, state=state, meta=meta,
                        dtype=self.model.safetensors_dtype)
        self.last_saved = self.state["step"]

    # ------------------------------------------------------------------ signals: finish the step, save, exit

    def _catch_signals(self):
        """SIGINT (Ctrl-C), SIGTERM (schedulers, kill) and SIGHUP (a closed terminal) all ask the
        loop to finish its step, save and exit; every process of a distributed run stops at the
        same step. A second Ctrl-C in a single process aborts at once."""
        handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                with contextlib.suppress(ValueError):  # (not the main thread, a notebook's worker say: none)
                    handlers[sig] = signal.signal(sig, self._on_signal)
        return handlers

    def _on_signal(self, signum, frame):
        if self._stop is not None:
            if signum == signal.SIGINT and self.world_size == 1:
                raise KeyboardInterrupt
            return  # torchrun forwards the signal the terminal already sent: one is enough
        self._stop = signum
        self.log(f"\n{signal.Signals(signum).name}: finishing this step, saving a checkpoint, then exiting"
                 + (" (Ctrl-C again to abort)" if self.world_size == 1 else ""))

    @staticmethod
    def _restore_signals(handlers):
        for sig, h in handlers.items():
            signal.signal(sig, h)

    @property
    def tokenizer(self):
        return self.ds.tokenizer


def sample_texts(model, tokenizer, config, data_mode, rng, num, temperature=0.5, top_k=0, prompt="",
                 max_new_tokens=None):
    """`num` samples, one after another (so the random stream is drawn as the seed draws it)."""
    docs = data_mode == "docs"
    prompt_ids = tokenizer.encode(prompt)
    if docs:
        context = [tokenizer.BOS] + prompt_ids
    else:
        context = prompt_ids or tokenizer.encode(default_stream_prompt(tokenizer))
    out = []
    for _ in range(num):
        new = generate(model, [context], rng, config.block_size, None if docs else (max_new_tokens or 500),
                       temperature, top_k, stop=(tokenizer.BOS,) if docs else (), slide=not docs)[0]
        out.append(tokenizer.decode(prompt_ids + new) if docs else tokenizer.decode(context + new))
    return out


def default_stream_prompt(tokenizer):
    """Continuous text has no BOS in training: start a sample from a newline (or the first token)."""
    try:
        tokenizer.encode("\n")
        return "\n"
    except MicroGPTError:
        return tokenizer.piece(0)


class Window:
    """The steps since the last log line: logged figures are their means, not the last batch's."""

    def __init__(self):
        self.sums, self.n, self.seconds, self.tokens = {}, 0, 0.0, 0

    def add(self, seconds, tokens, **figures):
        self.n += 1
        self.seconds += seconds
        self.tokens += tokens
        for k, v in figures.items():
            self.sums[k] = self.sums.get(k, 0.0) + v

    def means(self):
        return {k: v / self.n for k, v in self.sums.items()} if self.n else {}

    def tokens_per_s(self):
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class MetricsLog:
    """metrics.jsonl: one JSON line per logged step. On resume it keeps only the lines up to the
    step resumed from (a run killed after logging but before saving logged steps it will redo)."""

    def __init__(self, run_dir, start_step, tensorboard=False):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.f = self.tb = None
        try:
            kept = b""
            if start_step and os.path.exists(self.path):
                with open(self.path, "rb") as f:
                    steps = ((line, _step_of(line)) for line in f.read().splitlines(keepends=True))
                    kept = b"".join(line for line, step in steps if step is not None and step <= start_step)
            atomic_write_bytes(self.path, kept)
            self.f = open(self.path, "a")  # noqa: SIM115 (open for the whole run; closed by close())
        except OSError as e:
            raise MicroGPTError(f"cannot write {self.path} ({e.strerror or e}): free some space or fix the "
                                f"folder's permissions") from None
        if tensorboard:  # (hand-written event files: no dependency to write them)
            from microgpt.pictures.tensorboard import SummaryWriter
            logdir = os.path.join(run_dir, "tensorboard")
            try:
                self.tb = SummaryWriter(logdir)
            except OSError as e:
                self.close()
                raise MicroGPTError(f"cannot write TensorBoard files in {logdir} ({e.strerror or e}): free some "
                                    f"space or fix the folder's permissions") from None

    def write(self, record):
        try:
            self.f.write(json.dumps(record) + "\n")
            self.f.flush()
        except OSError as e:
            raise self._failed(self.path, e) from None
        if self.tb:
            from microgpt.pictures.tensorboard import log_metrics
            try:
                log_metrics(self.tb, record)
                self.tb.flush()
            except OSError as e:
                raise self._failed(self.tb.path, e) from None

    @staticmethod
    def _failed(path, e):
        return MicroGPTError(f"cannot write {path} ({e.strerror or e}): the last checkpoint is kept; "
                             f"free some space, then continue with --resume")

    def close(self):
        for f in (self.f, self.tb):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


def _step_of(line):
    """The step of one metrics.jsonl line; None for a line a kill cut short."""
    try:
        step = json.loads(line).get("step")
        return step if isinstance(step, int) else None
    except (ValueError, AttributeError, RecursionError):
        return None


class OpenRun(RunBase):
    """A trained run opened for sampling and evaluation (see Run.open)."""

    def __init__(self, out, engine, engine_options):
        ckpt = checkpoint.load(out)
        self.cfg = saved_config(ckpt, out)
        eng = self.cfg.engine
        if engine is not None and engine != eng.name:  # another engine: its own defaults, but the graph
            eng = EngineConfig(name=engine, graph=eng.graph)
        given = {k: v for k, v in engine_options.items() if v is not None}
        self.cfg.engine = eng = EngineConfig(**{**eng.to_dict(), "compile": False, "stats": False, **given})
        self.out, self.config, self.state, self.tokenizer = out, ckpt.config, ckpt.state, ckpt.tokenizer
        self.model = get_engine(eng.name).Model(ckpt.config, ckpt.weights, eng)
        self.rng = random.Random()
        rng_state_from_json(self.rng, ckpt.state.get("rng_state"))
        self._ds = None

    @property
    def ds(self):
        """The run's data, read when first needed (sampling needs only the tokenizer)."""
        if self._ds is None:
            tc = self.cfg.train
            if tc.data_mode == "chat" and self.cfg.data is None:  # rl on a chat task: problems, not data
                from microgpt.rl import Problems
                self._ds = Problems(self.tokenizer)
            elif tc.data_mode == "chat":
                from microgpt.conversations import read_conversations
                from microgpt.sft import ChatDataset
                self._ds = ChatDataset(read_conversations(self.cfg.data), self.tokenizer, self.config.block_size,
                                       tc.val_frac, random.Random(tc.seed))
            else:
                data = read_data(self.cfg.data)
                self._ds = Dataset(data.text, tc.data_mode, self.config.block_size, tc.val_frac,
                                   random.Random(tc.seed), tokenizer=self.tokenizer)
        return self._ds

    def use_data(self, path):
        """Evaluate on (or mark samples against) another file than the run's own."""
        self.cfg.data, self._ds = path, None


def saved_config(ckpt, out):
    """The RunConfig a checkpoint was saved with (see RunConfig.load)."""
    raw = ckpt.raw_config
    try:
        cfg = RunConfig.from_dict({**(raw.get("run") or {}), "out": out})
    except (TypeError, ValueError) as e:
        raise MicroGPTError(f"{ckpt.path}/config.json is corrupt ({e}): delete the run folder or train again") from None
    cfg.model, cfg.train, cfg.engine = ckpt.config, ckpt.train, ckpt.engine
    data = raw.get("data") or {}
    cfg.data = None if data.get("default", data.get("path") is None) else data.get("path")
    return cfg
