"""The command line: `microgpt train | sample | eval | plot` (no sub-command = train)."""

import argparse
import os
import random
import sys
import time

from microgpt import MicroGPTError, checkpoint
from microgpt.config import GPTConfig, TrainConfig


def _common_engine_args(p):
    p.add_argument("--engine", default=None,
                   help="python | numpy | torch (default: python; for an existing run, the engine that trained it)")
    p.add_argument("--graph", default="fused", help="python engine only: textbook | fused (default fused)")
    p.add_argument("--dtype", default=None,
                   help="numpy: float64 (default) | float32; torch: float32 (default) | float64 | bf16")
    p.add_argument("--device", default=None, help="torch only: cpu | cuda | mps")
    p.add_argument("--compile", action="store_true", help="torch only: torch.compile the model")


def build_parser():
    parser = argparse.ArgumentParser(prog="microgpt", description=__doc__)
    sub = parser.add_subparsers(dest="command")

    t = sub.add_parser("train", help="train a model (default: the seed's reference run) and print samples")
    t.add_argument("--data", help="text file, one document per line (default: the names data set)")
    t.add_argument("--data-mode", default=None, help="docs (one per line, default) | stream (continuous text)")
    t.add_argument("--out", default=None, help="run directory (default: runs/<date-time>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--steps", type=int, default=None, help="training steps (default 1000)")
    t.add_argument("--n-layer", type=int, default=None, help="transformer layers (default 1)")
    t.add_argument("--n-embd", type=int, default=None, help="embedding width (default 16)")
    t.add_argument("--n-head", type=int, default=None, help="attention heads (default 4)")
    t.add_argument("--block-size", type=int, default=None, help="context length in tokens (default 16)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default 0.01)")
    t.add_argument("--lr-schedule", default=None, help="linear (default) | cosine | constant")
    t.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up steps for cosine")
    t.add_argument("--weight-decay", type=float, default=None,
                   help="AdamW decoupled weight decay (default 0 = the seed's Adam)")
    t.add_argument("--dropout", type=float, default=None,
                   help="numpy/torch: dropout on each block's output in training (default 0)")
    t.add_argument("--batch-size", type=int, default=None, help="documents (windows) per step (default 1)")
    t.add_argument("--seed", type=int, default=None, help="random seed (default 42)")
    t.add_argument("--val-frac", type=float, default=None,
                   help="fraction held out for validation, from the end of the shuffled data (default 0.1)")
    t.add_argument("--eval-every", type=int, default=200, help="estimate val loss every N steps (0: never)")
    t.add_argument("--eval-docs", type=int, default=100, help="documents per val estimate (0: all)")
    t.add_argument("--stop-after", type=int, default=None,
                   help="stop (and save) after this step; the schedule still spans --steps; continue with --resume")
    t.add_argument("--checkpoint-every", type=int, default=0, help="save every N steps (always at the end)")
    t.add_argument("--log-every", type=int, default=1, help="print and record every N steps")
    t.add_argument("--num-samples", type=int, default=20, help="samples printed after training")
    t.add_argument("--temperature", type=float, default=0.5, help="sampling temperature (default 0.5)")
    t.add_argument("--max-new-tokens", type=int, default=None, help="stream mode: length of the sample")
    t.add_argument("--stats", action="store_true", help="report the graph size (nodes, edges) per step")
    t.add_argument("--quiet", action="store_true", help="print only the samples")
    _common_engine_args(t)

    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--out", required=True, help="run directory")
    s.add_argument("--num", type=int, default=20, help="number of samples (default 20)")
    s.add_argument("--temperature", type=float, default=0.5, help="sampling temperature (default 0.5)")
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    s.add_argument("--prompt", default="", help="start every sample with this text")
    s.add_argument("--max-new-tokens", type=int, default=None, help="stream models: tokens to generate")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed (default: continue the run's random stream, as train's samples do)")
    s.add_argument("--data", default=None, help="data to mark samples as seen (default: the run's data)")
    _common_engine_args(s)

    e = sub.add_parser("eval", help="train and validation loss of a trained run")
    e.add_argument("--out", required=True, help="run directory")
    e.add_argument("--data", default=None, help="data file (default: the run's data)")
    e.add_argument("--max-docs", type=int, default=1000, help="documents per split (0: all)")
    _common_engine_args(e)

    pl = sub.add_parser("plot", help="plot the loss curves of a run to loss.png (needs matplotlib)")
    pl.add_argument("--out", required=True, help="run directory")
    return parser


def engine_options(args, saved=None):
    """The engine settings; unless told otherwise, an existing run keeps the engine (and dtype)
    that trained it. `saved` is that run's config.json."""
    saved = saved or {}
    if args.engine is None:
        args.engine = saved.get("engine") or "python"
    if args.dtype is None and args.engine == saved.get("engine"):
        args.dtype = saved.get("dtype")
    if args.engine != "torch" and (args.device or args.compile):
        raise MicroGPTError("--device and --compile are for the torch engine: add --engine torch")
    return {"engine": args.engine, "graph": args.graph, "dtype": args.dtype,
            "device": args.device, "compile": args.compile}


def cmd_train(args):
    from microgpt.train import Run
    if args.out is None:
        if args.resume:
            raise MicroGPTError("--resume needs --out DIR: the run directory to continue")
        args.out = os.path.join("runs", time.strftime("%Y%m%d-%H%M%S"))
    base, saved = TrainConfig(), None
    if args.resume:  # continue with the run's own training config and data unless told otherwise
        ckpt = checkpoint.load(args.out)
        base, saved = ckpt.train, ckpt.raw_config
        if args.data is None:
            args.data = (ckpt.raw_config.get("data") or {}).get("path")
    tc = TrainConfig(**{k: (getattr(args, k) if getattr(args, k, None) is not None else v)
                        for k, v in base.to_dict().items()})
    config = GPTConfig(**{k: getattr(args, k) for k in ("n_layer", "n_embd", "n_head", "block_size")
                          if getattr(args, k) is not None})
    for name in ("eval_every", "eval_docs", "checkpoint_every", "num_samples"):
        if getattr(args, name) < 0:
            raise MicroGPTError(f"--{name.replace('_', '-')} must be >= 0")
    if args.stop_after is not None and args.stop_after <= 0:
        raise MicroGPTError("--stop-after must be >= 1")
    if args.log_every <= 0:
        raise MicroGPTError("--log-every must be >= 1")
    options = engine_options(args, saved)
    if tc.dropout and args.engine == "python":  # before the run directory is made
        from microgpt.engines.python.engine import NO_DROPOUT
        raise MicroGPTError(NO_DROPOUT)
    dist = _distributed(args, tc)
    run = Run(args, config, tc, options, dist)
    finished = run.train()
    if finished and args.num_samples:
        run.print_samples(args.num_samples, args.temperature, args.max_new_tokens)
    if dist[1] > 1:
        run.engine.finish_distributed()


def _distributed(args, tc):
    """(rank, world_size): torchrun sets WORLD_SIZE; only the torch engine can train across processes."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if args.engine != "torch":
        raise MicroGPTError(f"launched as {world} processes, but only --engine torch trains distributed")
    if tc.batch_size % world:  # each process trains on an equal slice of the global batch
        raise MicroGPTError(f"--batch-size {tc.batch_size} cannot be split evenly across {world} processes: "
                            f"use a multiple of {world}")
    from microgpt.engines import get_engine
    return get_engine("torch").setup_distributed(args)


def _load_run(args):
    from microgpt.engines import get_engine
    ckpt = checkpoint.load(args.out)
    options = engine_options(args, ckpt.raw_config)
    model = get_engine(args.engine).Model(ckpt.config, ckpt.weights, options)
    return ckpt, model


def _dataset_for(ckpt, data_arg, quiet=True):
    from microgpt.data import load_dataset
    path = data_arg or (ckpt.raw_config.get("data") or {}).get("path")
    return load_dataset(path, ckpt.train.data_mode, ckpt.config.block_size, ckpt.train.val_frac,
                        random.Random(ckpt.train.seed), tokenizer=ckpt.tokenizer, quiet=quiet)


def cmd_sample(args):
    from microgpt.sample import generate
    from microgpt.train import default_stream_prompt, rng_state_from_json
    if args.num < 0 or args.temperature <= 0 or args.top_k < 0:
        raise MicroGPTError("--num and --top-k must be >= 0 and --temperature > 0")
    ckpt, model = _load_run(args)
    ckpt.tokenizer.encode(args.prompt)  # an unknown character is a clear error before any work
    rng = random.Random(args.seed)
    if args.seed is None:
        rng_state_from_json(rng, ckpt.state["rng_state"])
    docs = ckpt.train.data_mode == "docs"
    try:
        ds = _dataset_for(ckpt, args.data) if docs else None
    except MicroGPTError as e:
        print(f"note: samples are not marked as seen/new ({e})", file=sys.stderr)
        ds = None
    for k in range(args.num):
        text = generate(model, ckpt.tokenizer, rng, ckpt.config.block_size, args.temperature, args.top_k,
                        prompt=args.prompt if docs else (args.prompt or default_stream_prompt(ckpt.tokenizer)),
                        max_new_tokens=None if docs else (args.max_new_tokens or 500), stop_at_bos=docs)
        if not docs:
            print(text)
            continue
        mark = ""
        if ds is not None:
            mark = "  (in train)" if text in ds.train_text else "  (in val)" if text in ds.val_text else "  (new)"
        print(f"sample {k + 1:2d}: {text}{mark}")


def cmd_eval(args):
    from microgpt.train import estimate_loss
    if args.max_docs < 0:
        raise MicroGPTError("--max-docs must be >= 0")
    ckpt, model = _load_run(args)
    ds = _dataset_for(ckpt, args.data, quiet=False)
    print(f"step {ckpt.state['step']}, {ds.describe()}")
    for split in ("train", "val"):
        seqs = ds.eval_sequences(split, args.max_docs)
        if seqs:
            print(f"{split} loss {estimate_loss(model, seqs):.4f} ({len(seqs)} sequences)")
        else:
            print(f"{split}: no data")


def cmd_plot(args):
    from microgpt.plot import plot_run
    print(f"wrote {plot_run(args.out)}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train"] + list(argv)  # `microgpt` alone is the reference run
    args = build_parser().parse_args(argv)
    try:
        {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "plot": cmd_plot}[args.command](args)
    except MicroGPTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
