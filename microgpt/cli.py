"""The command line: `microgpt train | sample | eval | plot` (no sub-command = train).

Each command parses its flags into the Python API (microgpt.run.Run, microgpt.config) and
prints what the API returns; nothing here computes anything itself.
"""

import argparse
import sys

from microgpt import MicroGPTError, __version__
from microgpt.config import RunConfig, require

# train's flags, each the config field it sets (model.*, train.*, engine.* or the run's own)
TRAIN_FLAGS = [
    ("--data", "data", str, "text file, one document per line (default: the names data set)"),
    ("--data-mode", "train.data_mode", str, "docs (one per line, default) | stream (continuous text)"),
    ("--out", "out", str, "run directory (default: runs/<date-time>)"),
    ("--steps", "train.steps", int, "training steps (default 1000)"),
    ("--n-layer", "model.n_layer", int, "transformer layers (default 1)"),
    ("--n-embd", "model.n_embd", int, "embedding width (default 16)"),
    ("--n-head", "model.n_head", int, "attention heads (default 4)"),
    ("--block-size", "model.block_size", int, "context length in tokens (default 16)"),
    ("--lr", "train.lr", float, "peak learning rate (default 0.01)"),
    ("--lr-schedule", "train.lr_schedule", str, "linear (default) | cosine | constant"),
    ("--warmup-steps", "train.warmup_steps", int, "linear warm-up steps for cosine"),
    ("--weight-decay", "train.weight_decay", float, "AdamW decoupled weight decay (default 0 = the seed's Adam)"),
    ("--dropout", "train.dropout", float, "numpy/torch: dropout on each block's output in training (default 0)"),
    ("--batch-size", "train.batch_size", int, "documents (windows) per step (default 1)"),
    ("--seed", "train.seed", int, "random seed (default 42)"),
    ("--val-frac", "train.val_frac", float,
     "fraction held out for validation, from the end of the shuffled data (default 0.1)"),
    ("--eval-every", "eval_every", int, "estimate the validation loss every N steps (default 200; 0: never)"),
    ("--eval-docs", "eval_docs", int, "documents per validation estimate (default 100; 0: all)"),
    ("--stop-after", "stop_after", int,
     "stop (and save) after this step; the schedule still spans --steps; continue with --resume"),
    ("--checkpoint-every", "checkpoint_every", int, "also save every N steps (always at the end)"),
    ("--log-every", "log_every", int, "print and record every N steps: the mean over those steps"),
]
ENGINE_FLAGS = [
    ("--engine", "engine.name", str,
     "python | numpy | torch (default: python; for an existing run, the engine that trained it)"),
    ("--graph", "engine.graph", str, "python engine only: textbook | fused (default fused)"),
    ("--dtype", "engine.dtype", str, "numpy: float64 (default) | float32; torch: float32 (default) | float64 | bf16"),
    ("--device", "engine.device", str, "torch only: cpu | cuda | cuda:N | mps"),
]


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other error
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _add(p, flags):
    for flag, path, typ, help in flags:  # dest "cfg.<path>": a flag left out stays None
        p.add_argument(flag, dest="cfg." + path, type=typ, default=None, help=help)


def _engine_args(p):
    _add(p, ENGINE_FLAGS)
    p.add_argument("--compile", dest="cfg.engine.compile", action="store_true", default=None,
                   help="torch only: torch.compile the model")


def _sampling_args(p, num_flag, num_default):
    p.add_argument(num_flag, type=int, default=num_default, help=f"number of samples (default {num_default})")
    p.add_argument("--temperature", type=float, default=0.5,
                   help="sampling temperature (default 0.5; 0: greedy, always the likeliest token)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="stream models: tokens to generate (default 500)")


def build_parser():
    parser = Parser(prog="microgpt", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"microgpt {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    t = sub.add_parser("train", help="train a model (default: the seed's reference run) and print samples")
    _add(t, TRAIN_FLAGS)
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    t.add_argument("--allow-data-change", action="store_true",
                   help="resume even though the data file's content changed since the run began")
    _sampling_args(t, "--num-samples", 20)
    t.add_argument("--stats", dest="cfg.engine.stats", action="store_true", default=None,
                   help="python engine: report the size of each step's graph (nodes, edges)")
    t.add_argument("--tensorboard", dest="cfg.tensorboard", action="store_true", default=None,
                   help="also write TensorBoard event files into RUN/tensorboard")
    t.add_argument("--quiet", dest="cfg.quiet", action="store_true", default=None, help="print only the samples")
    _engine_args(t)

    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--out", required=True, help="run directory")
    _sampling_args(s, "--num", 20)
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    s.add_argument("--prompt", default="", help="start every sample with this text")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed (default: continue the run's random stream, as train's samples do)")
    s.add_argument("--data", default=None, help="data to mark samples as seen (default: the run's data)")
    _engine_args(s)

    e = sub.add_parser("eval", help="loss and bits per byte of a trained run on its train and validation splits")
    e.add_argument("--out", required=True, help="run directory")
    e.add_argument("--data", default=None, help="data file (default: the run's data)")
    e.add_argument("--max-docs", type=int, default=1000, help="documents per split (default 1000; 0: all)")
    _engine_args(e)

    pl = sub.add_parser("plot", help="loss curves of one or more runs, overlaid (needs matplotlib)")
    pl.add_argument("runs", nargs="*", metavar="RUN", help="run directories to draw together")
    pl.add_argument("--out", action="append", default=[], help="a run directory (same as giving it as RUN)")
    pl.add_argument("--x", default="step", choices=("step", "tokens", "time"), help="x axis (default step)")
    pl.add_argument("--log", action="store_true", help="log-scale loss axis")
    pl.add_argument("--svg", action="store_true", help="also write an SVG beside the PNG")
    pl.add_argument("--to", default=None, help="picture file (default RUN/loss.png, or ./loss.png for several runs)")

    a = sub.add_parser("attention", help="every layer's and head's attention over a text, as heatmaps")
    a.add_argument("--out", required=True, help="run directory")
    a.add_argument("--text", required=True, help="the text to read (a document starts with BOS, as in training)")
    a.add_argument("--svg", action="store_true", help="also write an SVG")
    a.add_argument("--to", default=None, help="picture file (default RUN/attention.png)")

    em = sub.add_parser("embeddings", help="token embeddings (PCA to 2-D) and position-embedding similarities")
    em.add_argument("--out", required=True, help="run directory")
    em.add_argument("--svg", action="store_true", help="also write an SVG")
    em.add_argument("--to", default=None, help="picture file (default RUN/embeddings.png)")

    r = sub.add_parser("report", help="one self-contained report.html of a run: config, curves, pictures, samples")
    r.add_argument("--out", required=True, help="run directory")
    r.add_argument("--num", type=int, default=20, help="samples to show, each marked train / val / new (default 20)")
    r.add_argument("--text", action="append", default=None, help="a text whose attention to draw (repeatable)")
    r.add_argument("--max-docs", type=int, default=1000, help="documents per split to evaluate (default 1000; 0: all)")
    return parser


def _given(args, prefix="cfg."):
    """{config path: value} of the config flags given on the command line."""
    return {k[len(prefix):]: v for k, v in vars(args).items() if k.startswith(prefix) and v is not None}


def _apply(cfg, given):
    for path, value in given.items():
        *parents, name = path.split(".")
        obj = cfg
        for p in parents:
            obj = getattr(obj, p)
        setattr(obj, name, value)
    return cfg


def run_config(args):
    """The RunConfig the train flags describe: the defaults (the seed's run), or with --resume the
    run's own saved config; either way changed only by the flags given."""
    given = _given(args)
    if args.resume:
        if "out" not in given:
            raise MicroGPTError("--resume needs --out DIR: the run directory to continue")
        cfg = RunConfig.load(given["out"])
        saved_engine = cfg.engine.name
        cfg = _apply(cfg, given)
        if cfg.engine.name != saved_engine and "engine.dtype" not in given:
            cfg.engine.dtype = None  # another engine than the one that trained it: its own default
        return cfg
    return _apply(RunConfig(), given)


def cmd_train(args):
    from microgpt.run import Run
    require("temperature", args.temperature, "nonneg")
    if args.num_samples < 0:
        raise MicroGPTError(f"--num-samples must be >= 0, got {args.num_samples}")
    cfg = run_config(args)
    run = Run(cfg, resume=args.resume, overwrite=args.overwrite, allow_data_change=args.allow_data_change,
              command=["microgpt", *args.argv])
    finished = run.train()
    if finished and args.num_samples and run.is_main:
        docs = cfg.train.data_mode == "docs"
        print("\n--- samples ---" if docs else "\n--- sample ---")
        for k, text in enumerate(run.sample(args.num_samples, args.temperature,
                                            max_new_tokens=args.max_new_tokens)):
            print(f"sample {k + 1:2d}: {text}" if docs else text)
    if run.world_size > 1:
        run.engine.Model.finish_distributed()


def _open(args):
    from microgpt.run import Run
    engine_opts = _given(args, "cfg.engine.")
    return Run.open(args.out, engine=engine_opts.pop("name", None), **engine_opts)


def cmd_sample(args):
    for flag, rule in (("num", "nonneg"), ("temperature", "nonneg"), ("top_k", "nonneg")):
        require(flag, getattr(args, flag), rule)
    run = _open(args)
    run.tokenizer.encode(args.prompt)  # a character outside the vocabulary is an error before any work
    docs = run.cfg.train.data_mode == "docs"
    if args.data:
        run.use_data(args.data)
    marks = docs
    if docs:
        try:
            run.ds.describe()  # read the data to mark the samples as seen / new
        except MicroGPTError as e:
            print(f"note: samples are not marked as seen/new ({e})", file=sys.stderr)
            marks = False
    texts = run.sample(args.num, args.temperature, args.top_k, args.prompt, args.max_new_tokens, seed=args.seed)
    for k, text in enumerate(texts):
        print(f"sample {k + 1:2d}: {text}  ({run.mark(text)})" if marks else
              f"sample {k + 1:2d}: {text}" if docs else text)


def cmd_eval(args):
    require("max_docs", args.max_docs, "nonneg")
    run = _open(args)
    if args.data:
        run.use_data(args.data)
    print(f"step {run.state['step']}, {run.ds.describe()}")
    for split, r in run.evaluate(args.max_docs).items():
        if r["sequences"]:
            print(f"{split} loss {r['loss']:.4f} | {r['bpb']:.4f} bits per byte "
                  f"({r['sequences']} sequences, {r['tokens']} tokens)")
        else:
            print(f"{split}: no data")


def _wrote(paths):
    for path in paths:
        print(f"wrote {path}")


def cmd_plot(args):
    from microgpt.pictures.curves import plot_curves
    runs = args.runs + args.out
    if not runs:
        raise MicroGPTError("give the run directories to plot: microgpt plot RUN [RUN ...]")
    _wrote(plot_curves(runs, x=args.x, log=args.log, svg=args.svg, out=args.to))


def cmd_attention(args):
    from microgpt.pictures.attention import plot_attention
    _wrote(plot_attention(args.out, args.text, out=args.to, svg=args.svg))


def cmd_embeddings(args):
    from microgpt.pictures.embeddings import plot_embeddings
    _wrote(plot_embeddings(args.out, out=args.to, svg=args.svg))


def cmd_report(args):
    from microgpt.pictures import require_matplotlib
    from microgpt.pictures.report import build_report
    for flag in ("num", "max_docs"):
        require(flag, getattr(args, flag), "nonneg")
    require_matplotlib()
    run = _open(args)
    docs = run.cfg.train.data_mode == "docs"
    samples, results = [], []
    try:
        samples = [(t, run.mark(t).replace("in ", "") if docs else "") for t in run.sample(args.num)]
        for split, r in run.evaluate(args.max_docs).items():
            if r["sequences"]:
                results += [(f"{split} loss (nats/token)", r["loss"]), (f"{split} bits per byte", r["bpb"])]
    except MicroGPTError as e:  # the data file is gone: the page still shows the rest
        print(f"note: no samples or evaluation in the report ({e})", file=sys.stderr)
    _wrote([build_report(args.out, samples=samples or None, eval_results=results, attention_texts=args.text)])


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "plot": cmd_plot,
            "attention": cmd_attention, "embeddings": cmd_embeddings, "report": cmd_report}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["train"] + list(argv)  # `microgpt` alone is the reference run
    args = build_parser().parse_args(argv)
    args.argv = list(argv)
    try:
        COMMANDS[args.command](args)
    except MicroGPTError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a write the code did not foresee failing (full disk, ...): still one line
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
