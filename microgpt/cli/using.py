"""`microgpt sample | eval | chat`: a saved run opened (read once), asked, and its answers printed."""

import random
import sys

from microgpt.cli.parser import given
from microgpt.config import require
from microgpt.data.chat_template import ASSISTANT_START
from microgpt.errors import MicroGPTError
from microgpt.evaluate import evaluate_task
from microgpt.stages.chat import ChatSession
from microgpt.stages.open import open_run
from microgpt.tasks import get_task


def open_from_flags(args):
    """The run in --out, on the engine (and dtype, device, graph) the flags name, else its own."""
    engine_opts = given(args, "cfg.engine.")
    return open_run(args.out, engine=engine_opts.pop("name", None), **engine_opts)


def cmd_sample(args):
    for flag, rule in (("num", "nonneg"), ("temperature", "nonneg"), ("top_k", "nonneg")):
        require(flag, getattr(args, flag), rule)
    run = open_from_flags(args)
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
    run = open_from_flags(args)
    if args.data:
        run.use_data(args.data)
    elif not run.reads_data:  # rl on a chat task: no text, its task
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
    for flag, rule in (("num", "positive"), ("samples", "positive"), ("temperature", "nonneg"), ("top_k", "nonneg"),
                       ("turn", "positive")):
        require(flag, getattr(args, flag), rule)
    task = get_task(args.task)
    run = run or open_from_flags(args)
    if task.chat and ASSISTANT_START not in run.tokenizer.special_tokens:
        raise MicroGPTError(f"{args.out} is not a chat model (no chat template tokens): fine-tune it first with "
                            f"microgpt sft, or score a names task (names-ending:a, names-length:6-8)")
    train_texts = run.ds.train_text if not task.chat else ()
    r = evaluate_task(run.model, run.tokenizer, run.config.block_size, task, args.num, random.Random(args.seed),
                      args.samples, args.temperature, args.top_k, args.seed, train_texts, args.turn)
    turn = args.turn
    asked = f", asked at turn {turn} (after {turn - 1} held-out exchange{'s' * (turn > 2)}, answered right)" \
        if turn > 1 else ""
    print(f"task {r['task']}, {args.num} held-out {'problems' if task.chat else 'samples'}{asked}, "
          f"step {run.state['step']}")
    for key in [k for k in r if k.startswith("pass@")] + ["sample_accuracy", "reward_mean", "unique", "new"]:
        if key in r and (key != "pass@1" or "reward_mean" not in r):
            how = " (greedy)" if key == "pass@1" and task.chat else ""
            print(f"{key}{how}: {r[key]:.4f}")
    for ex in r["examples"][:5]:
        print("  " + (f"{ex[0]} -> {ex[1]!r} {'ok' if ex[2] else 'wrong'}" if task.chat else repr(ex)))


def cmd_chat(args):
    for flag in ("temperature", "top_k"):
        require(flag, getattr(args, flag), "nonneg")
    run = open_from_flags(args)
    if ASSISTANT_START not in run.tokenizer.special_tokens:
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
        except KeyboardInterrupt:
            print()  # (so "interrupted" starts a line of its own, not after what was typed)
            raise
        if not text.strip():  # an empty line asks nothing
            continue
        if text.strip() == "/reset":
            session.reset()
            print("(a new conversation)")
            continue
        try:
            session.say(text)
            print()
        except MicroGPTError as e:  # a character the model cannot read, a message too long: say so, go on
            print(f"error: {e}", file=sys.stderr)
