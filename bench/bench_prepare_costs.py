"""Where `microgpt data prepare`'s time goes beside tiktoken's own, and what two cores give: the ceiling
of bench_data.py's ratio "prepare (2 workers) / tiktoken alone on one core", measured on a SYNTHETIC slice.

On one core, over the same documents of a JSONL file (the slice bench_data.py makes), each stage timed on
its own, `--rounds` times in turn (median):
  tiktoken     encode_ordinary over the documents already in memory (the ratio's denominator);
  encoder      what prepare calls instead: encode.make_encoder's (tiktoken's encode_to_numpy, the ids
               into an array("I"): no list of Python ints made and turned into bytes);
  reading      readers.read_jsonl: the file's blocks decoded and checked, each line parsed as JSON;
  hashing      shards.doc_hash of every document (its split, and its "seen" mark in the .hash file);
  writing      encode.SplitWriter.add of every document's ids (array -> shard files, .idx, .hash);
  together     the four (the encoder for tiktoken), one document after another, as a worker runs them
               (what the stages cost when they take turns on one core: more than their sum, caches shared);
and the same tiktoken loop in two processes at once against one alone (what the second core gives).
If nothing else cost time, 2 workers would reach 2 x (two at once / one alone) / (the stages' time
over tiktoken's): the ceiling printed (planning, start-up and the tail left out), beside which
bench_data.py's measured ratio sits.

    python bench/bench_prepare_costs.py /tmp/bench-data/slice/slice.jsonl /tmp/bench-data/bpe4096.json --mb 30
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench_data import tiktoken_process  # noqa: E402

from microgpt import tokenizers  # noqa: E402
from microgpt.data.encode import SplitWriter, make_encoder, tiktoken_encoding  # noqa: E402
from microgpt.data.readers import read_jsonl  # noqa: E402
from microgpt.data.shards import doc_hash  # noqa: E402
from microgpt.data.sources import Part  # noqa: E402


def head(path, mb, dest):
    """The first `mb` MB of whole lines of path, written to dest."""
    size = 0
    with open(path, "rb") as f, open(dest, "wb") as out:
        for line in f:
            out.write(line)
            size += len(line)
            if size >= mb * 1e6:
                break
    return size


def clock(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jsonl", help="a JSONL file of documents (field text), e.g. bench_data.py's slice")
    ap.add_argument("tokenizer", help="a BPE tokenizer file (bench_data.py's bpe4096.json)")
    ap.add_argument("--mb", type=float, default=30, help="MB of the file's head measured (default 30)")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "head.jsonl")
    size = head(a.jsonl, a.mb, path)
    tok = tokenizers.load_file(a.tokenizer)
    enc, encoder = tiktoken_encoding(tok), make_encoder(tok, "tiktoken")
    part = Part(path, "jsonl", None, 0, size)
    docs = [p.text for p in read_jsonl(part, "text")]
    ids = [encoder(d) for d in docs]
    for i in ids:
        i.append(0)
    hashes = [doc_hash(d) for d in docs]

    def write():
        w = SplitWriter(tmp, "train", 0, "H", 1 << 24, True)
        for i, h in zip(ids, hashes):
            w.add(i, h, True)
        w.finish()

    def tiktoken():
        for d in docs:
            enc.encode_ordinary(d)

    def encode():
        for d in docs:
            encoder(d)

    def together():  # encode_item's loop: each document read, hashed, encoded, written in turn
        w = SplitWriter(tmp, "train", 0, "H", 1 << 24, True)
        for piece in read_jsonl(part, "text"):
            h = doc_hash(piece.text)
            i = encoder(piece.text)
            i.append(0)
            w.add(i, h, True)
        w.finish()

    stages = {"tiktoken": tiktoken, "encoder": encode,
              "reading": lambda: sum(1 for _ in read_jsonl(part, "text")),
              "hashing": lambda: [doc_hash(d) for d in docs],
              "writing": write,
              "together": together}
    times = {k: [] for k in stages}
    pair = {"one alone": [], "two at once": []}
    for _ in range(a.rounds):
        for k, f in stages.items():
            times[k].append(clock(f))
        pair["one alone"].append(float(tiktoken_process(path, a.tokenizer).communicate()[0].split()[0]))
        both = [tiktoken_process(path, a.tokenizer) for _ in range(2)]
        pair["two at once"].append(statistics.mean(float(p.communicate()[0].split()[0]) for p in both))
    med = {k: statistics.median(v) for k, v in {**times, **pair}.items()}
    print(f"{size / 1e6:.0f} MB, {len(docs):,} documents (synthetic), median of {a.rounds} rounds, one core each:")
    for k in stages:
        less = k in ("encoder", "together")  # (whole times: shown as their difference from tiktoken's)
        share = "" if k == "tiktoken" else f"  {med[k] / med['tiktoken'] - less:+6.1%} of tiktoken's time"
        print(f"  {k:>9}: {med[k]:6.3f} s  {size / 1e6 / med[k]:7.1f} MB/s{share}")
    total = sum(med[k] for k in ("encoder", "reading", "hashing", "writing")) / med["tiktoken"]
    together = med["together"] / med["tiktoken"]
    scale = med["one alone"] / med["two at once"]
    print(f"  tiktoken in two processes at once: each at {scale:.2f} of its speed alone "
          f"({med['two at once']:.3f} vs {med['one alone']:.3f} s)")
    print(f"  => ceiling of prepare (2 workers) / tiktoken alone: 2 x {scale:.2f} / {total:.2f} = "
          f"{2 * scale / total:.2f}x from the stages' sum; 2 x {scale:.2f} / {together:.2f} = "
          f"{2 * scale / together:.2f}x as prepare runs them, document by document")


if __name__ == "__main__":
    main()
