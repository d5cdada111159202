"""The training loop, shared by every engine: data -> engine.train_step -> log, evaluate, checkpoint."""

import json
import math
import os
import random
import signal
import time

from microgpt import MicroGPTError, checkpoint
from microgpt.config import learning_rate
from microgpt.data import atomic_write_bytes, load_dataset
from microgpt.engines import get_engine
from microgpt.init import init_weights, num_params
from microgpt.sample import generate


def rng_state_to_json(rng):
    version, internal, gauss_next = rng.getstate()
    return [version, list(internal), gauss_next]


def rng_state_from_json(rng, state):
    version, internal, gauss_next = state
    rng.setstate((version, tuple(internal), gauss_next))


def estimate_loss(model, seqs, batch_size=64):
    """Mean loss per target token over `seqs`, in batches (no gradients)."""
    total, n = 0.0, 0
    for i in range(0, len(seqs), batch_size):
        s, k = model.eval_loss(seqs[i:i + batch_size])
        total, n = total + s, n + k
    return total / n if n else float("nan")


def default_stream_prompt(tokenizer):
    """Continuous text has no BOS in training: start a sample from a newline (or the first character)."""
    try:
        tokenizer.encode("\n")
        return "\n"
    except MicroGPTError:
        return tokenizer.piece(0)


class Run:
    """One training run: owns the run directory, the data, the model and the random stream."""

    def __init__(self, args, config, tc, options, dist=(0, 1)):
        self.args, self.tc, self.options = args, tc, options
        self.rank, self.world_size = dist
        self.is_main = self.rank == 0
        self.out = args.out
        self.engine = get_engine(options["engine"])
        tc.validate()
        ckpt = None
        if args.resume:
            ckpt = checkpoint.load(self.out)
            config = self._check_resume(ckpt, config, tc)
        elif checkpoint.exists(self.out) and not args.overwrite:
            raise MicroGPTError(f"{self.out} already holds a run: pass --resume to continue it, "
                                f"--overwrite to replace it, or another --out")
        self.rng = random.Random(tc.seed)  # one stream, in the seed's order: shuffle, init, sampling
        self.ds = load_dataset(args.data, tc.data_mode, config.block_size, tc.val_frac, self.rng,
                               tokenizer=ckpt.tokenizer if ckpt else None, quiet=args.quiet or not self.is_main)
        config.vocab_size = self.ds.tokenizer.vocab_size
        self.config = config.validate()
        if ckpt:
            weights, self.start_step = ckpt.weights, int(ckpt.state["step"])
            rng_state_from_json(self.rng, ckpt.state["rng_state"])
        else:
            weights, self.start_step = init_weights(self.config, self.rng), 0
        self.model = self.engine.Model(self.config, weights, options)
        if ckpt and ckpt.optimizer:
            self.model.set_optimizer_state(ckpt.optimizer)
        self.last_saved = self.start_step if ckpt else None
        self._stop = False

    def _check_resume(self, ckpt, config, tc):
        given = {k: getattr(self.args, k) for k in ("n_layer", "n_embd", "n_head", "block_size")}
        for k, v in given.items():
            if v is not None and v != getattr(ckpt.config, k):
                raise MicroGPTError(f"--{k.replace('_', '-')} {v} does not match the checkpoint's {k} "
                                    f"{getattr(ckpt.config, k)}: drop it to resume, or train a new run")
        if int(ckpt.state["step"]) >= tc.steps:
            raise MicroGPTError(f"the checkpoint in {self.out} is already at step {ckpt.state['step']}: "
                                f"pass a larger --steps to train further")
        for k in ("seed", "data_mode", "val_frac"):  # these decide the data order: changing them breaks the run
            if getattr(ckpt.train, k) != getattr(tc, k):
                raise MicroGPTError(f"--{k.replace('_', '-')} {getattr(tc, k)} differs from the checkpoint's "
                                    f"{getattr(ckpt.train, k)}: resume with the same one")
        return ckpt.config

    def log(self, msg):
        if self.is_main and not self.args.quiet:
            print(msg, flush=True)

    def save(self, step, last_loss=None):
        if not self.is_main:
            return
        state = {"step": step, "rng_state": rng_state_to_json(self.rng), "last_loss": last_loss}
        extra = {"data": {"path": os.path.abspath(self.args.data) if self.args.data else None},
                 "engine": self.options["engine"], "dtype": self.options.get("dtype")}
        checkpoint.save(self.out, weights=self.model.get_weights(), optimizer=self.model.get_optimizer_state(),
                        config=self.config, train=self.tc, tokenizer=self.ds.tokenizer, state=state,
                        extra=extra, dtype=self.model.safetensors_dtype)
        self.last_saved = step

    def _metrics_start(self):
        """Open metrics.jsonl, keeping (on resume) only the lines up to the step we resume from."""
        path = os.path.join(self.out, "metrics.jsonl")
        kept = b""
        if self.start_step and os.path.exists(path):
            with open(path, "rb") as f:
                lines = f.read().splitlines(keepends=True)
            kept = b"".join(l for l in lines if l.strip() and json.loads(l).get("step", 0) <= self.start_step)
        atomic_write_bytes(path, kept)
        return open(path, "a")

    def _on_sigint(self, signum, frame):
        if self._stop:
            raise KeyboardInterrupt
        self._stop = True
        self.log("\ninterrupted: finishing this step, saving a checkpoint, then exiting (Ctrl-C again to abort)")

    def train(self):
        args, tc = self.args, self.tc
        if self.is_main:
            os.makedirs(self.out, exist_ok=True)
        self.log(f"data: {self.ds.describe()}")
        self.log(f"model: {num_params(self.config):,} parameters, {self.config.n_layer} layer(s), "
                 f"n_embd {self.config.n_embd}, {self.config.n_head} heads, block {self.config.block_size}; "
                 f"engine {self.options['engine']} ({self.model.description})")
        metrics = self._metrics_start() if self.is_main else None
        prev_handler = signal.signal(signal.SIGINT, self._on_sigint) if self.is_main else None
        t0 = time.time()
        t_train, tok_window = 0.0, 0
        loss = None
        try:
            end = min(tc.steps, args.stop_after or tc.steps)
            if end <= self.start_step:
                raise MicroGPTError(f"--stop-after {end} is not past the checkpoint's step {self.start_step}")
            for step in range(self.start_step, end):
                seqs = self.ds.train_batch(step, tc.batch_size, tc.seed, self.rank, self.world_size)
                lr = learning_rate(tc, step)
                t_step = time.time()
                loss = self.model.train_step(seqs, lr, step + 1, tc, **({"stats": True} if args.stats else {}))
                t_train += time.time() - t_step
                tok_window += sum(len(s) - 1 for s in seqs) * self.world_size
                if not math.isfinite(loss):
                    kept = (f"the last good checkpoint (step {self.last_saved}) is kept in {self.out}"
                            if self.last_saved is not None else "no checkpoint had been saved yet")
                    raise MicroGPTError(f"loss became {loss} at step {step + 1}: training stopped and {kept}; "
                                        f"lower --lr or check the data")
                done = step + 1
                record = {"step": done, "train_loss": loss, "lr": lr}
                if args.eval_every and (done % args.eval_every == 0 or done == tc.steps) and self.ds.val:
                    record["val_loss"] = estimate_loss(self.model, self.ds.eval_sequences("val", args.eval_docs))
                if done % args.log_every == 0 or done == end or "val_loss" in record or self._stop:
                    tps = tok_window / t_train if t_train > 0 else 0.0  # training time only, not evaluation
                    eta = (time.time() - t0) / (done - self.start_step) * (tc.steps - done)
                    record.update(tokens_per_s=round(tps, 1), elapsed=round(time.time() - t0, 3))
                    msg = f"step {done:4d} / {tc.steps:4d} | loss {loss:.4f}"
                    if "val_loss" in record:
                        msg += f" | val {record['val_loss']:.4f}"
                    msg += f" | {tps:,.0f} tok/s | eta {eta:.0f}s"
                    if args.stats and getattr(self.model, "last_graph_size", None):
                        msg += " | graph {:,} nodes {:,} edges".format(*self.model.last_graph_size)
                    self.log(msg)
                    if metrics:
                        metrics.write(json.dumps(record) + "\n")
                        metrics.flush()
                    t_train, tok_window = 0.0, 0
                if args.checkpoint_every and done % args.checkpoint_every == 0 and done < end:
                    self.save(done, loss)
                if self._stop:
                    self.save(done, loss)
                    self.log(f"saved checkpoint at step {done} in {self.out}; continue with --resume")
                    raise SystemExit(130)
            self.save(end, loss)
        finally:
            if metrics:
                metrics.close()
            if prev_handler is not None:
                signal.signal(signal.SIGINT, prev_handler)
        self.log(f"trained {end - self.start_step} steps in {time.time() - t0:.1f}s; "
                 f"checkpoint saved in {self.out}" + ("" if end == tc.steps else "; continue with --resume"))
        return end == tc.steps

    def print_samples(self, num, temperature, max_new_tokens=None, prompt=""):
        if not self.is_main:
            return
        docs = self.tc.data_mode == "docs"
        print("\n--- samples ---" if docs else "\n--- sample ---")
        for k in range(num):
            text = generate(self.model, self.ds.tokenizer, self.rng, self.config.block_size, temperature,
                            prompt=prompt if docs else (prompt or default_stream_prompt(self.ds.tokenizer)),
                            max_new_tokens=None if docs else (max_new_tokens or 500), stop_at_bos=docs)
            print(f"sample {k + 1:2d}: {text}" if docs else text)
