"""The command line: `microgpt train | sample | eval | plot` (no sub-command = train).

Each command parses its flags into the Python API (microgpt.run.Run, microgpt.config) and
prints what the API returns; nothing here computes anything itself.
"""

import argparse
import os
import sys

from microgpt import MicroGPTError, __version__
from microgpt.config import RunConfig, require

# train's flags, each the config field it sets (model.*, train.*, engine.* or the run's own)
TRAIN_FLAGS = [
    ("--data", "data", str, "text file, one document per line (default: the names data set)"),
    ("--data-mode", "train.data_mode", str, "docs (one per line, default) | stream (continuous text)"),
    ("--tokenizer", "tokenizer", str,
     "char (the seed's, default) | bpe (byte-level BPE trained on the training split) | a tokenizer file"),
    ("--vocab-size", "vocab_size", int, "bpe: tokens in all (256 bytes + merges + special tokens), e.g. 512"),
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
    ("--time-limit", "time_limit", float,
     "stop (and save) after this many seconds; the schedule still spans --steps; continue with --resume"),
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


def _training_args(p, data_help=None):
    """The flags of a command that trains a run (train, sft): the configs, and what to do with
    the run directory."""
    _add(p, [(f, d, t, data_help if f == "--data" and data_help else h) for f, d, t, h in TRAIN_FLAGS])
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--allow-data-change", action="store_true",
                   help="resume even though the data file's content changed since the run began")
    p.add_argument("--eval-task", dest="cfg.eval_task", default=None,
                   help="at every evaluation, also the held-out accuracy on this task (e.g. add; see microgpt tasks)")
    p.add_argument("--eval-num", dest="cfg.eval_num", type=int, default=None,
                   help="problems per --eval-task evaluation (default 200)")
    p.add_argument("--stats", dest="cfg.engine.stats", action="store_true", default=None,
                   help="python engine: report the size of each step's graph (nodes, edges)")
    p.add_argument("--tensorboard", dest="cfg.tensorboard", action="store_true", default=None,
                   help="also write TensorBoard event files into RUN/tensorboard")
    p.add_argument("--quiet", dest="cfg.quiet", action="store_true", default=None, help="print only the samples")
    _engine_args(p)


def build_parser():
    parser = Parser(prog="microgpt", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"microgpt {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    t = sub.add_parser("train", help="train a model (default: the seed's reference run) and print samples")
    _training_args(t)
    _sampling_args(t, "--num-samples", 20)

    ft = sub.add_parser("sft", help="supervised fine-tuning on conversations (JSONL), loss on the assistant's "
                                    "tokens only")
    _training_args(ft, data_help="conversations, one JSON object per line (microgpt tasks make writes some)")
    ft.add_argument("--from", dest="cfg.init_from", default=None,
                    help="a trained run to start from: its weights and tokenizer (+ the chat's special tokens); "
                         "without it, a new model")

    s = sub.add_parser("sample", help="generate text from a trained run")
    s.add_argument("--out", required=True, help="run directory")
    _sampling_args(s, "--num", 20)
    s.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (0: all)")
    s.add_argument("--prompt", default="", help="start every sample with this text")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed (default: continue the run's random stream, as train's samples do)")
    s.add_argument("--data", default=None, help="data to mark samples as seen (default: the run's data)")
    _engine_args(s)

    rl = sub.add_parser("rl", help="reinforcement learning on a task's checkable reward (policy gradient, "
                                   "group-mean baseline, optional KL penalty)")
    _training_args(rl)
    rl.add_argument("--from", dest="cfg.init_from", default=None, help="the trained run to start from")
    rl.add_argument("--task", dest="cfg.rl.task", default=None,
                    help="add, reverse, count (chat models); names-ending:a, names-length:6-8 (names models)")
    rl.add_argument("--prompts", dest="cfg.rl.prompts", type=int, default=None, help="P: problems per step (default 8)")
    rl.add_argument("--group-size", dest="cfg.rl.group_size", type=int, default=None,
                    help="G: answers sampled per problem (default 8); advantage = reward - the group's mean")
    rl.add_argument("--temperature", dest="cfg.rl.temperature", type=float, default=None,
                    help="of the sampled answers (default 1.0)")
    rl.add_argument("--top-k", dest="cfg.rl.top_k", type=int, default=None, help="sample among the k likeliest")
    rl.add_argument("--kl", dest="cfg.rl.kl", type=float, default=None,
                    help="beta of a per-token KL penalty against the starting model (default 0: none)")
    rl.add_argument("--std-normalize", dest="cfg.rl.std_normalize", action="store_true", default=None,
                    help="divide each advantage by its group's standard deviation")

    e = sub.add_parser("eval", help="loss and bits per byte on the train and validation splits; "
                                    "with --task, accuracy on held-out problems (pass@k)")
    e.add_argument("--out", required=True, help="run directory")
    e.add_argument("--data", default=None, help="data file (default: the run's data)")
    e.add_argument("--max-docs", type=int, default=1000, help="documents per split (default 1000; 0: all)")
    e.add_argument("--task", default=None, help="a task to score instead (add, reverse, count, names-ending:a, ...)")
    e.add_argument("--num", type=int, default=500, help="--task: held-out problems (default 500)")
    e.add_argument("--samples", type=int, default=1,
                   help="--task: replies drawn per problem; k > 1 gives pass@k at --temperature (default 1: greedy)")
    e.add_argument("--temperature", type=float, default=0.0,
                   help="--task: 0 = greedy (default); with --samples k the temperature of the draws (0 there: 1.0)")
    e.add_argument("--top-k", type=int, default=0, help="--task: draw among the k likeliest tokens (0: all)")
    e.add_argument("--seed", type=int, default=0, help="--task: which held-out problems, and the draws (default 0)")
    _engine_args(e)

    ts = sub.add_parser("tasks", help="tasks with checkable answers: list them, or make conversations")
    ts_sub = ts.add_subparsers(dest="tasks_command", parser_class=Parser, required=True)
    ts_sub.add_parser("list", help="the tasks and their parameters")
    tm = ts_sub.add_parser("make", help="write problems of a task as conversations (JSONL) for microgpt sft")
    tm.add_argument("--task", required=True, help="add, add:4, reverse, count, or a mixture: add,reverse,count")
    tm.add_argument("--num", type=int, required=True, help="how many problems")
    tm.add_argument("--split", default="train", help="train (default) | test: the two never share a problem")
    tm.add_argument("--seed", type=int, default=0, help="which problems (default 0)")
    tm.add_argument("--to", default=None, help="file to write (default: standard output)")

    c = sub.add_parser("chat", help="talk to a fine-tuned run in the terminal (or answer --prompt once)")
    c.add_argument("--out", required=True, help="run directory of a chat model (microgpt sft)")
    c.add_argument("--prompt", default=None, help="answer this one message and exit")
    c.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    c.add_argument("--top-k", type=int, default=0, help="draw among the k likeliest tokens (0: all)")
    c.add_argument("--seed", type=int, default=None, help="random seed of the draws (default: fresh each time)")
    _engine_args(c)

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

    tk = sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer on its own")
    tk_sub = tk.add_subparsers(dest="tokenizer_command", parser_class=Parser, required=True)
    tt = tk_sub.add_parser("train", help="learn BPE merges from a file's training split and save them")
    tt.add_argument("--data", default=None, help="text file (default: the names data set)")
    tt.add_argument("--vocab-size", type=int, required=True, help="tokens in all (256 bytes + merges + <|bos|>)")
    tt.add_argument("--out", required=True, help="tokenizer file to write (JSON; reuse: train --tokenizer FILE)")
    tt.add_argument("--data-mode", default="docs", help="docs (one per line, default) | stream")
    tt.add_argument("--val-frac", type=float, default=0.1,
                    help="held out as train does, never learnt from (default 0.1; 0: the whole file)")
    tt.add_argument("--seed", type=int, default=42, help="the shuffle of docs mode, as train's --seed (default 42)")

    tz = sub.add_parser("tokenize", help="show how a text is cut into tokens: each piece with its id")
    tz.add_argument("text", help="the text to tokenize")
    tz_from = tz.add_mutually_exclusive_group(required=True)
    tz_from.add_argument("--out", help="a run directory: its tokenizer")
    tz_from.add_argument("--tokenizer", help="a tokenizer file (microgpt tokenizer train)")

    r = sub.add_parser("report", help="one self-contained report.html of a run: config, curves, pictures, samples")
    r.add_argument("--out", required=True, help="run directory")
    r.add_argument("--num", type=int, default=20, help="samples to show, each marked train / val / new (default 20)")
    r.add_argument("--text", action="append", default=None, help="a text whose attention to draw (repeatable)")
    r.add_argument("--max-docs", type=int, default=1000, help="documents per split to evaluate (default 1000; 0: all)")

    sv = sub.add_parser("serve", help="an OpenAI-compatible API and a page to watch the model think (microgpt[serve])")
    sv.add_argument("--out", action="append", required=True, help="a run directory (repeat to serve several)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free one)")
    sv.add_argument("--api-key", default=os.environ.get("MICROGPT_API_KEY"),
                    help="require 'Authorization: Bearer KEY' (default: $MICROGPT_API_KEY; none: no key)")
    sv.add_argument("--reload", action="store_true", help="serve each new checkpoint a running train writes")
    sv.add_argument("--engine", default=None, help="python | numpy | torch (default: the engine that trained it)")
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


def _start(cls, args):
    """A training run of class `cls` from the flags; trained; returns (run, finished)."""
    cfg = run_config(args)
    given = _given(args)
    if cfg.init_from and not args.resume and "engine.name" not in given:
        # a run started --from another keeps that run's engine (and dtype) unless told otherwise
        from microgpt import checkpoint
        cfg.engine = checkpoint.load(cfg.init_from, with_optimizer=False).engine
        _apply(cfg, {k: v for k, v in given.items() if k.startswith("engine.")})
    require("eval_num", cfg.eval_num, "positive")
    run = cls(cfg, resume=args.resume, overwrite=args.overwrite, allow_data_change=args.allow_data_change,
              command=["microgpt", *args.argv])
    finished = run.train()
    if run.world_size > 1:
        run.engine.Model.finish_distributed()
    return run, finished


def cmd_train(args):
    from microgpt.run import Run
    require("temperature", args.temperature, "nonneg")
    if args.num_samples < 0:
        raise MicroGPTError(f"--num-samples must be >= 0, got {args.num_samples}")
    run, finished = _start(Run, args)
    cfg = run.cfg
    if finished and args.num_samples and run.is_main:
        docs = cfg.train.data_mode == "docs"
        print("\n--- samples ---" if docs else "\n--- sample ---")
        for k, text in enumerate(run.sample(args.num_samples, args.temperature,
                                            max_new_tokens=args.max_new_tokens)):
            print(f"sample {k + 1:2d}: {text}" if docs else text)


def cmd_rl(args):
    from microgpt.rl import RLRun
    model_flags = [k for k in _given(args) if k.startswith("model.")]
    if model_flags:
        raise MicroGPTError(f"--{model_flags[0][6:].replace('_', '-')}: the model's size comes from --from RUN; "
                            f"drop it")
    _start(RLRun, args)


def cmd_sft(args):
    from microgpt.sft import SFTRun
    model_flags = [k for k in _given(args) if k.startswith("model.")]
    if vars(args).get("cfg.init_from") and model_flags:
        raise MicroGPTError(f"--{model_flags[0][6:].replace('_', '-')}: the model's size comes from --from RUN; "
                            f"drop it")
    _start(SFTRun, args)


def _open(args):
    from microgpt.run import Run
    engine_opts = _given(args, "cfg.engine.")
    return Run.open(args.out, engine=engine_opts.pop("name", None), **engine_opts)


def cmd_sample(args):
    for flag, rule in (("num", "nonneg"), ("temperature", "nonneg"), ("top_k", "nonneg")):
        require(flag, getattr(args, flag), rule)
    run = _open(args)
    run.tokenizer.encode(args.prompt)  # a character outside the vocabulary is an error before any work
    if args.data:
        run.use_data(args.data)
    if run.cfg.train.data_mode == "chat":  # a chat model: its replies to the prompt, or to held-out questions
        for k, (question, reply, mark) in enumerate(run.answers(args.num, args.temperature, args.top_k, args.prompt,
                                                                 args.max_new_tokens, seed=args.seed)):
            print(f"sample {k + 1:2d}: {question} -> {reply}" + (f"  ({mark})" if mark else ""))
        return
    docs = run.cfg.train.data_mode == "docs"
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
    if args.task:
        return eval_task(args)
    run = _open(args)
    if args.data:
        run.use_data(args.data)
    elif run.cfg.train.data_mode == "chat" and run.cfg.data is None:  # rl on a chat task: no text, its task
        print(f"note: {args.out} trained on problems of {run.cfg.rl.task}, not on a data file: scoring that task",
              file=sys.stderr)
        args.task = run.cfg.rl.task
        return eval_task(args, run)
    print(f"step {run.state['step']}, {run.ds.describe()}")
    for split, r in run.evaluate(args.max_docs).items():
        if r["sequences"]:
            print(f"{split} loss {r['loss']:.4f} | {r['bpb']:.4f} bits per byte "
                  f"({r['sequences']} sequences, {r['tokens']} tokens)")
        else:
            print(f"{split}: no data")


def eval_task(args, run=None):
    import random

    from microgpt.chat import evaluate_task
    from microgpt.tasks import get_task
    for flag, rule in (("num", "positive"), ("samples", "positive"), ("temperature", "nonneg"), ("top_k", "nonneg")):
        require(flag, getattr(args, flag), rule)
    task = get_task(args.task)
    run = run or _open(args)
    if task.chat and "<|assistant_start|>" not in run.tokenizer.special_tokens:
        raise MicroGPTError(f"{args.out} is not a chat model (no chat template tokens): fine-tune it first with "
                            f"microgpt sft, or score a names task (names-ending:a, names-length:6-8)")
    train_texts = run.ds.train_text if not task.chat else ()
    r = evaluate_task(run.model, run.tokenizer, run.config.block_size, task, args.num, random.Random(args.seed),
                      args.samples, args.temperature, args.top_k, args.seed, train_texts)
    print(f"task {r['task']}, {args.num} held-out {'problems' if task.chat else 'samples'}, step {run.state['step']}")
    for key in [k for k in r if k.startswith("pass@")] + ["sample_accuracy", "reward_mean", "unique", "new"]:
        if key in r and (key != "pass@1" or "reward_mean" not in r):
            how = " (greedy)" if key == "pass@1" and task.chat else ""
            print(f"{key}{how}: {r[key]:.4f}")
    for ex in r["examples"][:5]:
        print("  " + (f"{ex[0]} -> {ex[1]!r} {'ok' if ex[2] else 'wrong'}" if task.chat else repr(ex)))


def cmd_tasks(args):
    from microgpt.tasks import describe_tasks, get_task, make_conversations
    if args.tasks_command == "list":
        print(describe_tasks())
        return
    from microgpt.conversations import dumps_conversations, write_conversations
    require("num", args.num, "positive")
    convs = make_conversations(get_task(args.task), args.split, args.num, args.seed)
    if args.to:
        write_conversations(args.to, convs)
        print(f"wrote {len(convs)} {args.split} conversations of {args.task} to {args.to}")
    else:
        sys.stdout.write(dumps_conversations(convs))


def cmd_chat(args):
    import random

    from microgpt.chat import ChatSession
    for flag in ("temperature", "top_k"):
        require(flag, getattr(args, flag), "nonneg")
    run = _open(args)
    if "<|assistant_start|>" not in run.tokenizer.special_tokens:
        raise MicroGPTError(f"{args.out} is not a chat model (no chat template tokens): fine-tune it with microgpt sft")
    stream = lambda text: print(text, end="", flush=True)
    session = ChatSession(run.model, run.tokenizer, run.config.block_size, random.Random(args.seed),
                          args.temperature, args.top_k, on_text=stream)
    if args.prompt is not None:
        session.say(args.prompt)
        print()
        return
    print(f"chatting with {args.out} (step {run.state['step']}): /reset starts over, Ctrl-D leaves")
    while True:
        try:
            text = input("> ")
        except EOFError:
            print()
            return
        if text.strip() == "/reset":
            session.reset()
            print("(a new conversation)")
            continue
        try:
            session.say(text)
            print()
        except MicroGPTError as e:  # a character the model cannot read, a message too long: say so, go on
            print(f"error: {e}", file=sys.stderr)


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
    mode = run.cfg.train.data_mode
    samples, results = [], []
    try:
        if mode == "chat":  # replies to held-out questions, marked right / wrong (or as written / new)
            answered = run.answers(args.num)
            samples = [(f"{q} \u2192 {reply}", mark.replace("in ", "")) for q, reply, mark in answered]
            args.text = args.text or [q for q, _, _ in answered[:2]]  # attention: the first two questions
        else:
            samples = [(t, run.mark(t).replace("in ", "") if mode == "docs" else "") for t in run.sample(args.num)]
        for split, r in run.evaluate(args.max_docs).items():
            if r["sequences"]:
                results += [(f"{split} loss (nats/token)", r["loss"]), (f"{split} bits per byte", r["bpb"])]
    except MicroGPTError as e:  # the data file is gone: the page still shows the rest
        print(f"note: no samples or evaluation in the report ({e})", file=sys.stderr)
    _wrote([build_report(args.out, samples=samples or None, eval_results=results, attention_texts=args.text)])


def cmd_tokenizer(args):
    import random
    import time

    from microgpt import tokenizers
    from microgpt.config import TrainConfig
    from microgpt.data import Dataset, read_data
    TrainConfig(val_frac=args.val_frac, data_mode=args.data_mode, seed=args.seed).validate()
    data = read_data(args.data)
    t0 = time.time()
    # the split `train` makes with the same --data-mode, --val-frac and --seed: learn from its training part
    ds = Dataset(data.text, args.data_mode, 1, args.val_frac, random.Random(args.seed), bpe_vocab_size=args.vocab_size)
    tok = ds.tokenizer
    tokenizers.save_file(tok, args.out)
    print(f"trained a {tok.vocab_size:,}-token BPE tokenizer ({len(tok.merges):,} merges"
          + ("; the text ran out of pairs to merge" if tok.stopped_early else "")
          + f") on the training split of {data.path} in {time.time() - t0:.1f}s")
    for split, seqs in (("train", ds.train), ("val", ds.val)):
        seqs = seqs if args.data_mode == "docs" else [seqs]
        n_tokens = sum(len(s) for s in seqs)
        if n_tokens:
            n_bytes = sum(len(tok.token_bytes(t)) for s in seqs for t in s)
            print(f"  {split}: {n_tokens:,} tokens, {n_bytes / n_tokens:.2f} bytes per token")
    print(f"wrote {args.out}; train with it: microgpt train --tokenizer {args.out} ...")


def cmd_tokenize(args):
    from microgpt import checkpoint, tokenizers
    tok = checkpoint.load(args.out, with_optimizer=False).tokenizer if args.out else tokenizers.load_file(
        args.tokenizer)
    ids = tok.encode(args.text)
    n_bytes = len(args.text.encode("utf-8"))
    print(f"{len(ids)} tokens for {n_bytes} bytes" + (f" ({n_bytes / len(ids):.2f} bytes per token)" if ids else ""))
    print("|".join(tok.readable_piece(i) for i in ids))
    for i in ids:
        print(f"{i:>7}  {tok.readable_piece(i)}")


def cmd_serve(args):
    from microgpt.serve import serve
    serve(args.out, args.host, args.port, args.api_key, args.reload, args.engine)


COMMANDS = {"train": cmd_train, "sft": cmd_sft, "rl": cmd_rl, "tasks": cmd_tasks, "chat": cmd_chat,
            "sample": cmd_sample, "eval": cmd_eval, "plot": cmd_plot, "attention": cmd_attention,
            "embeddings": cmd_embeddings, "report": cmd_report, "tokenizer": cmd_tokenizer, "tokenize": cmd_tokenize,
            "serve": cmd_serve}


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
    except BrokenPipeError:  # the reader went away (`microgpt sample | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
