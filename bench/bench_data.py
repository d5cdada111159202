"""Corpora of any size (microgpt data prepare + train --data DATA_DIR), measured on a SYNTHETIC corpus.

The corpus: JSONL files of documents made by make_corpus() from a seed: words drawn from a Zipf law
over 30,000 made-up words (2-10 letters), sentences of 4-20 words, documents of 1-12 paragraphs
(~3 KB, web-page sized). It measures speed and memory, not quality: nothing learnt from it means much.

Figures (each printed with the command behind it; RSS = resident memory of the whole process tree,
RssAnon = its anonymous part: the program's own memory, without the page cache of mapped shards):
  1. prepare the whole corpus (tiktoken, BPE-4096, 2 workers): MB/s and peak RSS / RssAnon;
  2. train on it (numpy, float32, the shakespeare-sized model): start-up to step 1, --resume to its
     first step, peak RSS / RssAnon, beside the same run in memory on tinyshakespeare (--data FILE with
     the same tokenizer file), and tokens/s of the two;
  3. on a slice of the corpus: prepare (tiktoken, 2 workers) vs tiktoken's encode_ordinary alone on one
     core over the same documents; prepare with the pure-Python encoder, 2 workers vs 1.

    MICROGPT_DATA_DIR=../shared/data python bench/bench_data.py --work /tmp/bench-data --gb 5
    ... --gb 0.2            # a quick look (the targets are for >= 5 GB)
"""

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("MICROGPT_DATA_DIR", "")
MODEL = ["--engine", "numpy", "--dtype", "float32", "--data-mode", "stream", "--n-layer", "2", "--n-embd", "128",
         "--n-head", "4", "--block-size", "64", "--batch-size", "24", "--arch", "nanochat", "--optimizer", "muon",
         "--lr", "1e-2", "--eval-every", "0", "--log-every", "1"]
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")


def make_corpus(folder, gb, seed=0, file_mb=256):
    """JSONL files of synthetic documents, about `gb` GB in all (see the module docstring)."""
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
             for _ in range(30_000)]
    cum, total = [], 0.0
    for r in range(len(words)):
        total += 1 / (r + 1)  # Zipf: the r-th word is 1/r as frequent as the first
        cum.append(total)
    sentences = []
    for _ in range(200_000):  # a pool of sentences, drawn from again and again (fast to write GBs)
        s = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(4, 20)))
        sentences.append(s[0].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!", ";"]))
    total, k = 0, 0
    while total < gb * 1e9:
        path = os.path.join(folder, f"part-{k:04d}.jsonl")
        with open(path, "w") as f:
            size = 0
            while size < file_mb * 1e6 and total + size < gb * 1e9:
                paras = [" ".join(rng.choices(sentences, k=rng.randint(2, 8))) for _ in range(rng.randint(1, 12))]
                line = json.dumps({"text": "\n\n".join(paras), "id": f"{k}-{size}"}) + "\n"
                f.write(line)
                size += len(line)
        total += size
        k += 1
    return total


class Watch:
    """A command run to its end, its process tree's peak RSS and RssAnon sampled every 50 ms, and the
    time at which it printed each line (for "start-up to step 1")."""

    def __init__(self, cmd, env=ENV):
        self.t0 = time.time()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                     cwd=ROOT)
        self.peak_rss = self.peak_anon = 0
        self.lines = []
        reader = threading.Thread(target=self._read, daemon=True)
        reader.start()
        while self.proc.poll() is None:
            rss, anon = _tree_memory(self.proc.pid)
            self.peak_rss, self.peak_anon = max(self.peak_rss, rss), max(self.peak_anon, anon)
            time.sleep(0.05)
        reader.join()
        self.wall = time.time() - self.t0
        if self.proc.returncode:
            sys.exit(f"error: {' '.join(cmd)} failed:\n" + "".join(l for _, l in self.lines[-30:]))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append((time.time() - self.t0, line))

    def first(self, pattern):
        return next(t for t, l in self.lines if re.search(pattern, l))

    def mem(self):
        return f"peak RSS {self.peak_rss / 2**20:,.0f} MiB (RssAnon {self.peak_anon / 2**20:,.0f} MiB)"


def _tree_memory(pid):
    rss = anon = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("RssAnon:"):
                        anon += int(line.split()[1]) * 1024
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return rss, anon


def microgpt(*args):
    return [sys.executable, "-m", "microgpt", *map(str, args)]


def show(what, cmd, figure):
    print(f"{what}: {figure}\n    $ {' '.join(map(str, cmd)).replace(sys.executable + ' -m ', '')}", flush=True)


def slice_corpus(src_folder, dest, mb):
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    size = 0
    with open(dest, "w") as out:
        for name in sorted(os.listdir(src_folder)):
            with open(os.path.join(src_folder, name)) as f:
                for line in f:
                    out.write(line)
                    size += len(line)
                    if size >= mb * 1e6:
                        return size
    return size


def tiktoken_process(path, tokenizer_file):
    """A process timing tiktoken's encode_ordinary with our merges, one core, over the documents of a JSONL
    file: it prints the seconds and the documents' UTF-8 bytes."""
    code = ("import json, time\nfrom microgpt import tokenizers\n"
            "from microgpt.data.encode import tiktoken_encoding\n"
            f"enc = tiktoken_encoding(tokenizers.load_file({tokenizer_file!r}))\n"
            f"docs = [json.loads(l)['text'] for l in open({path!r})]\n"
            "t0 = time.perf_counter()\nfor d in docs: enc.encode_ordinary(d)\n"
            "print(time.perf_counter() - t0, sum(len(d.encode()) for d in docs))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=ENV)


def tiktoken_alone(path, tokenizer_file):
    """MB/s of tiktoken's encode_ordinary with our merges, one core, over the documents of a JSONL file."""
    p = tiktoken_process(path, tokenizer_file)
    seconds, size = p.communicate()[0].split()
    if p.returncode:
        raise SystemExit(f"timing tiktoken failed (exit {p.returncode})")
    return int(size) / float(seconds) / 1e6


def prepare_rate(sources, out, workers, encoder, tokenizer_file, mb):
    cmd = microgpt("data", "prepare", *sources, "--out", out, "--tokenizer", tokenizer_file, "--workers", workers,
                   "--encoder", encoder)
    w = Watch(cmd)
    return mb / w.wall, w, cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="a folder for the corpus, its shards and the runs")
    ap.add_argument("--gb", type=float, default=5.0, help="size of the synthetic corpus (default 5)")
    ap.add_argument("--slice-mb", type=float, default=200, help="the slice for the tiktoken ratio (default 200)")
    ap.add_argument("--python-mb", type=float, default=10, help="the slice for the pure-Python ratio (default 10)")
    ap.add_argument("--steps", type=int, default=60, help="training steps measured (default 60)")
    ap.add_argument("--rounds", type=int, default=3, help="training runs of each side, in turn (default 3)")
    ap.add_argument("--only", choices=("train", "prepare"), default=None, help="only figures 2, or only 3")
    a = ap.parse_args()
    w = lambda *p: os.path.join(a.work, *p)
    shakespeare = os.path.join(DATA, "tinyshakespeare.txt")
    if not os.path.isdir(w("corpus")):
        t0 = time.time()
        n = make_corpus(w("corpus"), a.gb)
        print(f"made the synthetic corpus: {n / 1e9:.2f} GB of JSONL in {time.time() - t0:.0f}s", flush=True)
    size_mb = sum(os.path.getsize(w("corpus", f)) for f in os.listdir(w("corpus"))) / 1e6
    tok = w("bpe4096.json")
    if not os.path.exists(w("shards", "manifest.json")):
        cmd = microgpt("data", "prepare", w("corpus"), "--out", w("shards"), "--tokenizer", "bpe", "--vocab-size",
                       4096, "--workers", 2)
        run = Watch(cmd)
        show("1. prepare, tiktoken, BPE-4096, 2 workers", cmd,
             f"{size_mb:,.0f} MB in {run.wall:.0f}s = {size_mb / run.wall:.1f} MB/s; {run.mem()}")
    if not os.path.exists(tok):
        with open(w("shards", "manifest.json")) as f, open(tok, "w") as t:
            json.dump(json.load(f)["tokenizer"], t)

    if a.only != "prepare":
        train_figures(a, w, shakespeare, tok)
    if a.only != "train":
        prepare_figures(a, w, tok)


def train_figures(a, w, shakespeare, tok):
    """2. training: in memory (tinyshakespeare, same tokenizer) and from the shards, in turn, `--rounds` times."""
    sides = {"in memory": ["--data", shakespeare, "--tokenizer", tok], "shards": ["--data", w("shards")]}
    runs = {name: [] for name in sides}
    for _ in range(a.rounds):
        for name, data in sides.items():
            out = w("run-" + name.replace(" ", "-"))
            cmd = microgpt("train", *data, *MODEL, "--steps", a.steps + 100, "--stop-after", a.steps,
                           "--num-samples", 0, "--out", out, "--overwrite")
            r = Watch(cmd)
            with open(os.path.join(out, "metrics.jsonl")) as f:
                rows = [json.loads(line) for line in f][10:]  # (after the warm-up)
            r.tps = (rows[-1]["tokens"] - rows[0]["tokens"]) / (rows[-1]["elapsed"] - rows[0]["elapsed"])
            r.step1, r.cmd = r.first(r"step +1 /"), cmd
            runs[name].append(r)
    for name, rs in runs.items():
        med = lambda f: statistics.median(f(r) for r in rs)  # noqa: B023 (used at once)
        show(f"2. train {name} (median of {len(rs)})", rs[0].cmd,
             f"start-up to step 1 {med(lambda r: r.step1):.2f}s; {med(lambda r: r.tps):,.0f} tok/s; peak RSS "
             f"{med(lambda r: r.peak_rss) / 2**20:,.0f} MiB (RssAnon {med(lambda r: r.peak_anon) / 2**20:,.0f} MiB)")
    cmd = microgpt("train", "--resume", "--out", w("run-shards"), "--stop-after", a.steps + 5, "--num-samples", 0)
    res = Watch(cmd)
    first = res.first(r"step +[0-9]+ /")
    show("   resume from the shards", cmd, f"start-up to its first step {first:.2f}s; {res.mem()}")
    ratio = statistics.median(s.tps / m.tps for s, m in zip(runs["shards"], runs["in memory"]))
    d_rss = statistics.median(s.peak_rss - m.peak_rss for s, m in zip(runs["shards"], runs["in memory"]))
    d_anon = statistics.median(s.peak_anon - m.peak_anon for s, m in zip(runs["shards"], runs["in memory"]))
    print(f"   => tokens/s from shards / in memory: {ratio:.3f} (median of the rounds' ratios); peak RSS difference "
          f"{d_rss / 2**20:+,.0f} MiB (RssAnon {d_anon / 2**20:+,.0f} MiB)", flush=True)



def prepare_figures(a, w, tok):
    """3. prepare's speed on slices, against encoding alone, and workers: each pair `--rounds` times in turn,
    the median of the rounds' ratios."""
    sl = w("slice", "slice.jsonl")
    mb = slice_corpus(w("corpus"), sl, a.slice_mb) / 1e6
    ratios = []
    for _ in range(a.rounds):
        alone = tiktoken_alone(sl, tok)
        rate, run, cmd = prepare_rate([sl], w("slice-tt"), 2, "tiktoken", tok, mb)
        shutil.rmtree(w("slice-tt"), ignore_errors=True)
        ratios.append(rate / alone)
        show(f"3. prepare {mb:.0f} MB, tiktoken, 2 workers", cmd, f"{rate:.1f} MB/s; {run.mem()}; tiktoken's "
             f"encode_ordinary alone, 1 core, {alone:.1f} MB/s: {rate / alone:.2f}x")
    print(f"   => prepare (2 workers) / tiktoken alone: {statistics.median(ratios):.2f}x (median of {len(ratios)})")
    sl2 = w("slice-py", "slice.jsonl")
    mb2 = slice_corpus(w("corpus"), sl2, a.python_mb) / 1e6
    ratios = []
    for _ in range(a.rounds):
        rates = {}
        for n in (1, 2):
            rates[n], run, cmd = prepare_rate([sl2], w(f"slice-py{n}"), n, "python", tok, mb2)
            shutil.rmtree(w(f"slice-py{n}"), ignore_errors=True)
            show(f"   prepare {mb2:.0f} MB, pure Python, {n} worker(s)", cmd, f"{rates[n]:.2f} MB/s; {run.mem()}")
        ratios.append(rates[2] / rates[1])
    print(f"   => pure Python, 2 workers / 1: {statistics.median(ratios):.2f}x (median of {len(ratios)})")
    for d in ("slice-tt", "slice-py1", "slice-py2"):
        shutil.rmtree(w(d), ignore_errors=True)


if __name__ == "__main__":
    main()
