"""`microgpt tasks | tokenizer | tokenize | plot | attention | embeddings | report`: the tools
around a run (data to fine-tune on, tokenizers, pictures), each flags -> one call -> print."""

import random
import sys
import time

from microgpt import checkpoint, tokenizers
from microgpt.cli.using import open_from_flags
from microgpt.config import TrainConfig, require
from microgpt.data.conversations import dumps_conversations, write_conversations
from microgpt.data.text import Dataset, read_data
from microgpt.errors import MicroGPTError
from microgpt.tasks import describe_tasks, get_task, make_conversations


def cmd_tasks(args):
    if args.tasks_command == "list":
        print(describe_tasks())
        return
    require("num", args.num, "positive")
    convs = make_conversations(get_task(args.task), args.split, args.num, args.seed, args.multi_turn, args.block_size)
    if args.to:
        write_conversations(args.to, convs)
        turns = [sum(len(c["messages"]) == 2 * k for c in convs) for k in (2, 3)]
        print(f"wrote {len(convs)} {args.split} conversations of {args.task} to {args.to}" +
              (f" ({turns[0]} with 2 exchanges and {turns[1]} with 3, as many as fit --block-size {args.block_size})"
               if args.multi_turn else ""))
    else:
        sys.stdout.write(dumps_conversations(convs))


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
    run = open_from_flags(args)
    mode = run.cfg.train.data_mode
    samples, evaluation = [], None
    try:
        if mode == "chat":  # replies to held-out questions, marked right / wrong (or as written / new)
            answered = run.answers(args.num)
            samples = [(f"{q} \u2192 {reply}", mark.replace("in ", "")) for q, reply, mark in answered]
            args.text = args.text or [q for q, _, _ in answered[:2]]  # attention: the first two questions
        else:
            samples = [(t, run.mark(t).replace("in ", "") if mode == "docs" else "") for t in run.sample(args.num)]
        evaluation = run.evaluate(args.max_docs)  # (the page says what each loss covers)
    except MicroGPTError as e:  # the data file is gone: the page still shows the rest
        print(f"note: no samples or evaluation in the report ({e})", file=sys.stderr)
    _wrote([build_report(run, samples=samples or None, evaluation=evaluation, attention_texts=args.text)])


def cmd_tokenizer(args):
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
    tok = checkpoint.load(args.out, with_optimizer=False).tokenizer if args.out else tokenizers.load_file(
        args.tokenizer)
    ids = tok.encode(args.text)
    n_bytes = len(args.text.encode("utf-8"))
    print(f"{len(ids)} tokens for {n_bytes} bytes" + (f" ({n_bytes / len(ids):.2f} bytes per token)" if ids else ""))
    print("|".join(tok.readable_piece(i) for i in ids))
    for i in ids:
        print(f"{i:>7}  {tok.readable_piece(i)}")
