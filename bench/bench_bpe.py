"""The BPE tokenizer, measured on tinyshakespeare: training time, encoding speed, compression.

    MICROGPT_DATA_DIR=../shared/data python bench/bench_bpe.py                # ~1 minute
    MICROGPT_DATA_DIR=../shared/data python bench/bench_bpe.py --repeats 5 --naive-merges 32

Everything runs in this one process, so the ratios compare like with like on a noisy machine:
1. training: our trainer for a 4,096-token vocabulary on all of tinyshakespeare (target <= 10 s
   on CPython 3.11), against HF tokenizers' Rust trainer (same chunks, same number of merges;
   skipped if not installed), median of repeats;
2. per merge: a naive minbpe-style loop (every chunk of the text, every pair counted again at
   every merge) and the textbook loop over distinct chunks against ours, all making the same
   first merges (only 64 of them: the naive loop takes ~0.3 s a merge);
3. encoding: tokens/s of our encoder (cold cache: a fresh tokenizer; warm cache: the same text
   again) against tiktoken built from the same merges (skipped if not installed);
4. compression: bytes per token for vocabularies of 512..4096, trained on the first 90% of
   the text and measured on the last 10% (unseen) and on the training part.
"""

import argparse
import gc
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from microgpt.tokenizers.bpe import BPETokenizer
from microgpt.tokenizers.bpe_learn import count_chunks, learn_merges, learn_merges_textbook, merge, utf8
from microgpt.tokenizers.pattern import PATTERN, split, stdlib_regex

DATA_DIR = os.environ.get("MICROGPT_DATA_DIR", "")


def timed(fn, repeats):
    """(median seconds, last result) of `repeats` calls of fn()."""
    times, result = [], None
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def minbpe_style(chunks, n_merges):
    """minbpe's RegexTokenizer.train loop: `chunks` holds every chunk of the text as its own list
    of ids (no counting of distinct chunks), and every merge counts every pair of every chunk
    again. Ties go to the smallest pair, as ours, so the merges can be compared."""
    merges = []
    for k in range(n_merges):
        stats = {}
        for ids in chunks:
            for pair in zip(ids, ids[1:]):
                stats[pair] = stats.get(pair, 0) + 1
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))
        chunks = [merge(ids, pair, 256 + k) for ids in chunks]
        merges.append(pair)
    return merges


def hf_trainer(n_merges):
    """A function training HF tokenizers' BPE on a text, split by our PATTERN; None without it."""
    try:
        import tokenizers
        from tokenizers import Regex, models, pre_tokenizers, trainers
    except ImportError:
        return None

    def train(text):
        hf = tokenizers.Tokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        trainer = trainers.BpeTrainer(vocab_size=256 + n_merges, show_progress=False, special_tokens=[],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        hf.train_from_iterator([text], trainer)
        return hf
    return train


def tiktoken_from(tok):
    try:
        import tiktoken
    except ImportError:
        return None
    ranks = {tok.token_bytes(i): i for i in range(256 + len(tok.merges))}
    return tiktoken.Encoding(name="microgpt-bench", pat_str=tok.pattern, mergeable_ranks=ranks,
                             special_tokens=dict(tok.special_tokens))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(DATA_DIR, "tinyshakespeare.txt"),
                    help="text file (default: $MICROGPT_DATA_DIR/tinyshakespeare.txt)")
    ap.add_argument("--vocab", type=int, default=4096, help="vocabulary for the training race (default 4096)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each cheap measurement (median)")
    ap.add_argument("--naive-merges", type=int, default=64, help="merges for the per-merge race (default 64)")
    args = ap.parse_args()
    if not os.path.exists(args.data):
        sys.exit(f"{args.data} not found: set MICROGPT_DATA_DIR or pass --data")
    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    n_bytes = len(text.encode("utf-8"))
    impl = f"{platform.python_implementation()} {platform.python_version()}"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(f"{impl}, {os.cpu_count()} cores (load average {load}); {os.path.basename(args.data)}: "
          f"{n_bytes:,} bytes; {args.repeats} repeats, medians")
    stdlib_regex()  # build the Unicode classes once (~0.2 s), outside every timing

    # 1. training the full vocabulary
    n_merges = args.vocab - 256 - 1  # 256 bytes + merges + <|bos|>
    print(f"\n1. training a {args.vocab:,}-token vocabulary ({n_merges:,} merges + <|bos|>)")
    t_split, (words, counts) = timed(lambda: count_chunks(text), args.repeats)
    t_learn, merges = timed(lambda: learn_merges(words, counts, n_merges), args.repeats)
    t_train, tok = timed(lambda: BPETokenizer.train(text, args.vocab), args.repeats)
    assert tok.merges == merges
    print(f"   ours: {t_train:.2f} s in all (target <= 10 s) = split and count chunks {t_split:.2f} s "
          f"({sum(counts):,} chunks, {len(words):,} distinct) + learn merges {t_learn:.2f} s")
    hf = hf_trainer(n_merges)
    if hf is None:
        print("   HF tokenizers: not installed (pip install tokenizers), skipped")
    else:
        t_hf, _ = timed(lambda: hf(text), args.repeats)
        threads = os.environ.get("RAYON_NUM_THREADS", f"default: up to {os.cpu_count()}")
        print(f"   HF tokenizers (Rust, threads {threads}): {t_hf:.2f} s; ours / HF = {t_train / t_hf:.1f}x")

    # 2. per merge, on the first merges
    k = args.naive_merges
    print(f"\n2. per merge: the first {k} merges (the chunks are split beforehand, not timed)")
    every_chunk = [list(utf8(c)) for c in split(text)]
    t_naive, m_naive = timed(lambda: minbpe_style(every_chunk, k), 1)
    t_text, m_text = timed(lambda: learn_merges_textbook(words, counts, k), max(1, args.repeats // 2))
    t_fast, m_fast = timed(lambda: learn_merges(words, counts, k), args.repeats)
    print(f"   {'':<46} {'total s':>8} {'ms/merge':>9} {'vs ours':>8}")
    for name, t in [("naive minbpe-style (every chunk, all pairs)", t_naive),
                    ("textbook (distinct chunks, all pairs)", t_text),
                    ("ours (distinct chunks, incremental)", t_fast)]:
        print(f"   {name:<46} {t:>8.3f} {t / k * 1e3:>9.2f} {t / t_fast:>7.0f}x")
    print(f"   same merges in all three: {m_naive == m_text == m_fast}")
    print(f"   over all {n_merges:,} merges: ours {t_learn / n_merges * 1e3:.2f} ms/merge (the first merges "
          f"touch the most chunks); the naive loop at its rate here would take "
          f"~{t_naive / k * n_merges / 60:.0f} min")

    # 3. encoding speed
    print(f"\n3. encoding all of {os.path.basename(args.data)} with the {args.vocab:,}-token vocabulary")
    saved = tok.to_dict()

    def cold():
        fresh = BPETokenizer.from_dict(saved)
        t0 = time.perf_counter()
        ids = fresh.encode(text)
        return time.perf_counter() - t0, ids, fresh
    colds = [cold() for _ in range(args.repeats)]
    t_cold, ids, fresh = statistics.median(c[0] for c in colds), colds[-1][1], colds[-1][2]
    t_warm, ids_warm = timed(lambda: fresh.encode(text), args.repeats)
    n_tok = len(ids)
    print(f"   {n_tok:,} tokens ({n_bytes / n_tok:.2f} bytes/token)")
    print(f"   ours, cold cache: {n_tok / t_cold / 1e6:.2f} M tokens/s ({t_cold:.2f} s); "
          f"warm cache: {n_tok / t_warm / 1e6:.2f} M tokens/s ({t_warm:.2f} s)")
    enc = tiktoken_from(tok)
    if enc is None:
        print("   tiktoken: not installed (pip install tiktoken), skipped")
    else:
        t_tt, ids_tt = timed(lambda: enc.encode_ordinary(text), args.repeats)
        print(f"   tiktoken from the same merges: {n_tok / t_tt / 1e6:.2f} M tokens/s ({t_tt:.3f} s); "
              f"tiktoken / ours: {t_cold / t_tt:.0f}x cold, {t_warm / t_tt:.0f}x warm; "
              f"same ids: {ids_tt == ids == ids_warm}")

    # 4. compression
    cut = text.rfind("\n", 0, int(len(text) * 0.9)) + 1
    train_text, held_out = text[:cut], text[cut:]
    print(f"\n4. compression: trained on the first {len(train_text):,} characters, bytes per token")
    print(f"   {'vocab':>6} {'merges':>6} {'held-out 10%':>13} {'training 90%':>13} {'train s':>8}")
    for v in (512, 1024, 2048, 4096):
        t0 = time.perf_counter()
        t = BPETokenizer.train(train_text, v)
        dt = time.perf_counter() - t0
        bpt = [len(s.encode("utf-8")) / len(t.encode(s)) for s in (held_out, train_text)]
        print(f"   {v:>6} {len(t.merges):>6} {bpt[0]:>13.2f} {bpt[1]:>13.2f} {dt:>8.2f}")
    print("   (bytes/token 1.00 = no compression: the char tokenizer's ~1 byte per ASCII character)")


if __name__ == "__main__":
    main()
