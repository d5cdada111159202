"""Characters vs BPE on tinyshakespeare: the same model, the same wall-clock budget, validation
bits per byte (the one number that compares tokenizers: loss summed / ln 2 / bytes of text).

    MICROGPT_DATA_DIR=../shared/data python bench/bench_tokenizers.py                 # ~10 minutes
    MICROGPT_DATA_DIR=../shared/data python bench/bench_tokenizers.py --budget 60     # quicker

Each tokenizer trains the same model (numpy engine, float32, 4 layers, n_embd 128, 4 heads,
block 64 tokens, batch 12, lr 3e-3 cosine) on the stream of the text before the validation cut.
A bigger vocabulary makes lm_head and wte bigger (slower steps) but each token covers more text
(more context per block). "The same budget": the speed of each is measured first in this one
process (alternating, median of repeats), and each trains the number of steps its speed allows
in --budget seconds; the cosine schedule spans those steps. Then the whole validation text is
scored.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from microgpt.config import EngineConfig, GPTConfig, RunConfig, TrainConfig, learning_rate
from microgpt.params import num_params
from microgpt.stages.pretrain import Run


def make_run(args, tokenizer, steps, out):
    vocab = None if tokenizer == "char" else int(tokenizer)
    cfg = RunConfig(out=out, data=args.data, tokenizer="char" if vocab is None else "bpe", vocab_size=vocab,
                    model=GPTConfig(n_layer=4, n_embd=128, n_head=4, block_size=64),
                    train=TrainConfig(steps=steps, batch_size=12, lr=3e-3, lr_schedule="cosine", warmup_steps=100,
                                      data_mode="stream"),
                    engine=EngineConfig(name="numpy", dtype="float32"), eval_every=0, log_every=10 ** 9, quiet=True)
    return Run(cfg)


def seconds_per_step(run, steps, start=0):
    tc = run.cfg.train
    t0 = time.perf_counter()
    for s in range(start, start + steps):
        run.model.train_step(run.ds.train_batch(s, tc.batch_size, tc.seed), learning_rate(tc, s), s + 1, tc)
    return (time.perf_counter() - t0) / steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=180.0, help="training seconds per tokenizer (default 180)")
    ap.add_argument("--tokenizers", default="char,512,2048",
                    help="char and BPE vocabulary sizes (default char,512,2048)")
    ap.add_argument("--probe-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=os.path.join(os.environ.get("MICROGPT_DATA_DIR", ""), "tinyshakespeare.txt"))
    args = ap.parse_args()
    names = args.tokenizers.split(",")
    tmp = tempfile.mkdtemp(prefix="bench-tok-")

    # 1) the speed of each, alternating in this process
    probes = {n: make_run(args, n, 10 ** 6, os.path.join(tmp, f"probe-{n}")) for n in names}
    times = {n: [] for n in names}
    for r in range(args.repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            times[n].append(seconds_per_step(probes[n], args.probe_steps, r * args.probe_steps))
    per_step = {n: statistics.median(t) for n, t in times.items()}
    print(f"tinyshakespeare ({args.data}), stream; numpy float32, 4 layers, n_embd 128, 4 heads, block 64, batch 12; "
          f"budget {args.budget:.0f} s each")
    print(f"{'tokenizer':>10} {'vocab':>6} {'params':>9} {'bytes/tok':>9} {'ms/step':>8} {'steps':>6} {'time s':>7} "
          f"{'val loss':>9} {'val bpb':>8}")

    # 2) train each for the steps its speed allows in the budget, then score the whole validation text
    for n in names:
        steps = max(1, int(args.budget / per_step[n]))
        run = make_run(args, n, steps, os.path.join(tmp, n))
        t0 = time.perf_counter()
        run.train()
        elapsed = time.perf_counter() - t0
        val = run.evaluate_split("val")
        tok = run.ds.tokenizer
        n_bytes = sum(len(tok.token_bytes(t)) for t in run.ds.val)
        label = "char" if n == "char" else f"BPE-{n}"
        print(f"{label:>10} {tok.vocab_size:>6} {num_params(run.config):>9,} {n_bytes / len(run.ds.val):>9.2f} "
              f"{per_step[n] * 1e3:>8.1f} {steps:>6} {elapsed:>7.1f} {val['loss']:>9.4f} {val['bpb']:>8.4f}",
              flush=True)


if __name__ == "__main__":
    main()
