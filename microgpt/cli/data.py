"""`microgpt data prepare | check | info`: corpora of any size as memory-mapped token shards
(microgpt/data/prepare.py), checked against their manifest, described."""

import os
import sys
import time
from array import array

from microgpt.data.prepare import PrepareOptions, prepare
from microgpt.data.progress import Progress
from microgpt.data.sharded import PreparedCorpus
from microgpt.data.shards import INDEX_TYPE, TYPECODES, check_files
from microgpt.errors import MicroGPTError

PREPARE = """Tokenize a corpus once into shards that `microgpt train --data DATA_DIR` memory-maps: the same memory
and start-up at any size. SOURCE: files, folders (recursively) and globs of .txt/.md (see --text-mode), .jsonl
(--text-field) and .parquet files, each optionally .gz or .zst (.parquet compresses itself)."""


def add_parser(sub, parser_class):
    d = sub.add_parser("data", help="prepare a corpus of any size into token shards; check or describe one")
    d_sub = d.add_subparsers(dest="data_command", parser_class=parser_class, required=True)
    p = d_sub.add_parser("prepare", help="tokenize files, folders, JSONL and Parquet into shards", description=PREPARE)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="files, folders or globs")
    p.add_argument("--out", required=True, metavar="DATA_DIR", help="the folder to write (new, or --resume)")
    p.add_argument("--tokenizer", default="char", metavar="NAME",
                   help="char (default) | bpe (learnt from a sample of the training documents) | a tokenizer file")
    p.add_argument("--vocab-size", type=int, default=None, metavar="N", help="bpe: tokens in all, e.g. 4096")
    p.add_argument("--text-mode", default="lines", metavar="MODE",
                   help="plain text: lines (one document per line, default) | file (one per file) | stream "
                        "(continuous text: train with --data-mode stream)")
    p.add_argument("--text-field", default="text", metavar="NAME",
                   help="the JSONL field or Parquet column holding the text (default text)")
    p.add_argument("--val-frac", type=float, default=0.1, metavar="X",
                   help="share of documents held out for validation, chosen by a hash of each (default 0.1)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="processes (default: the cores)")
    p.add_argument("--shard-tokens", type=int, default=PrepareOptions.shard_tokens, metavar="N",
                   help=f"at most N tokens a shard (default {PrepareOptions.shard_tokens:,})")
    p.add_argument("--tokenizer-sample-bytes", type=int, default=PrepareOptions.tokenizer_sample_bytes,
                   metavar="N", help=f"bpe: learn from the first N bytes of training documents, in source order "
                                     f"(default {PrepareOptions.tokenizer_sample_bytes:,})")
    p.add_argument("--encoder", default="auto", metavar="NAME",
                   help="auto (tiktoken with our merges when installed: same ids, faster) | python | tiktoken")
    p.add_argument("--resume", action="store_true", help="continue a prepare that was stopped, keeping its shards")
    c = d_sub.add_parser("check", help="every shard's SHA-256 against the manifest (reads the whole corpus)")
    c.add_argument("dir", metavar="DATA_DIR")
    i = d_sub.add_parser("info", help="what a prepared corpus holds")
    i.add_argument("dir", metavar="DATA_DIR")


def cmd_data(args):
    {"prepare": _prepare, "check": _check, "info": _info}[args.data_command](args)


def _prepare(args):
    opts = PrepareOptions(tuple(args.sources), args.out, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                          text_mode=args.text_mode, text_field=args.text_field, val_frac=args.val_frac,
                          shard_tokens=args.shard_tokens, tokenizer_sample_bytes=args.tokenizer_sample_bytes,
                          encoder=args.encoder)
    workers = args.workers or _cores()
    if workers < 1:
        raise MicroGPTError(f"--workers must be >= 1, got {workers}")
    t0 = time.time()
    log = lambda m: print(m, file=sys.stderr, flush=True)
    from microgpt.data.pool import Stopped
    try:
        m = prepare(opts, workers, args.resume, command=["microgpt", *args.argv], log=log)
    except Stopped as e:
        log(f"stopped: the finished shards are kept in {args.out}; continue with the same command and --resume")
        sys.exit(128 + e.signum)
    t, v = m["totals"]["train"], m["totals"]["val"]
    docs = f"{t['documents']:,} train / {v['documents']:,} val documents, " if m["docs"] else ""
    print(f"prepared {args.out} in {time.time() - t0:.1f}s: {docs}{t['tokens']:,} train / {v['tokens']:,} val "
          f"tokens ({m['dtype']}) in {len(m['shards'])} shards; "
          f"train on it: microgpt train --data {args.out}" + ("" if m["docs"] else " --data-mode stream"))


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _check(args):
    corpus = PreparedCorpus(args.dir)
    m = corpus.manifest
    width, index_width = array(TYPECODES[m["dtype"]]).itemsize, array(INDEX_TYPE).itemsize
    total = sum(s["tokens"] * width + index_width * (s["documents"] + s["hashed"]) for s in m["shards"])
    bar, done, t0 = Progress("checking", total), [0], time.time()

    def progress(n):
        done[0] += n
        bar.show(done[0])

    problems = check_files(args.dir, m, progress)
    bar.close(done[0])
    for name, problem in problems:
        print(f"{os.path.join(args.dir, name)}: {problem}")
    if problems:
        raise MicroGPTError(f"{len(problems)} damaged file(s) in {args.dir}: prepare the corpus again")
    print(f"{args.dir}: all {len(m['shards'])} shards match the manifest ({done[0] / 1e6:,.1f} MB read in "
          f"{time.time() - t0:.1f}s); fingerprint {corpus.sha256[:16]}")


def _info(args):
    corpus = PreparedCorpus(args.dir)
    m = corpus.manifest
    tok = corpus.tokenizer
    print(f"{args.dir}: a corpus prepared by microgpt {m.get('microgpt')}; fingerprint {corpus.sha256[:16]}")
    print(f"  tokenizer: {m['tokenizer']['type']}, {tok.vocab_size:,} tokens, stored as {m['dtype']}")
    for split in ("train", "val"):
        t = m["totals"][split]
        print(f"  {split}: {t['documents']:,} documents, {t['tokens']:,} tokens")
    print(f"  documents: {'yes (docs and stream modes)' if m['docs'] else 'no: continuous text (stream mode)'}; "
          f"split: {m['split']['val_frac']} by a hash of each document")
    print(f"  {len(m['sources'])} source(s), {sum(s['bytes'] for s in m['sources']) / 1e6:,.1f} MB; "
          f"{len(m['shards'])} shard(s)")
    if m.get("command"):
        print(f"  made by: {' '.join(m['command'])}")
