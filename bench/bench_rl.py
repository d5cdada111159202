"""Reinforcement learning, measured: the seed's names model learning to end names in "a" (python
engine, with and without a KL penalty), and RL against more fine-tuning on 3-digit addition.

    MICROGPT_DATA_DIR=../shared/data python bench/bench_rl.py names      # ~7 minutes
    MICROGPT_DATA_DIR=../shared/data python bench/bench_rl.py add        # ~11 minutes
    microgpt plot runs/bench-rl/names-* --x time      # the curves (reward, held-out reward, ...)
    microgpt plot runs/bench-rl/add-* --x time

names: the seed's reference run (1000 steps) is the starting model. `microgpt rl --task
names-ending:a` for --budget seconds (default 180) on the python engine, G = 16 names per step,
lr 3e-3 constant, once without and once with --kl 0.1. Every 25 steps, 200 fresh names (T = 1)
are scored: the reward (fraction ending in "a"), unique names, names not in the training data.
add: a deliberately short fine-tune (`microgpt sft`, 2 layers, n_embd 64, 330 steps) leaves
held-out pass@1 around 40-70%. From that same checkpoint, for --budget seconds (default 300)
each: RL on the add task (P = 16 problems x G = 8 answers per step), and the fine-tuning simply
continued (its own lr, 3e-3). Held-out pass@1 (greedy, 500 test problems) is logged as they
go; RL: lr 3e-4, T = 1.
Every run is left in runs/bench-rl/ (metrics.jsonl, checkpoints) for `microgpt plot` / `report`.
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from microgpt.checkpoint import load_config
from microgpt.config import EngineConfig, GPTConfig, RLConfig, RunConfig, TrainConfig, changed
from microgpt.data.conversations import write_conversations
from microgpt.stages.pretrain import Run
from microgpt.stages.rl import RLRun
from microgpt.stages.sft import SFTRun
from microgpt.tasks import get_task, make_conversations


def rows(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def first_time(rs, key, threshold):
    hit = [r["elapsed"] for r in rs if r.get(key) is not None and r[key] >= threshold]
    return f"{hit[0]:.0f} s" if hit else "not reached"


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    return path


def bench_names(args):
    base = os.path.join(args.out, "names-base")
    if not os.path.exists(os.path.join(base, "checkpoint")):
        Run(RunConfig(out=fresh(base), eval_every=0, quiet=True)).train()  # the seed's run
    print(f"names-ending:a on the seed's 4,192-parameter model (python engine), {args.budget:.0f} s each; "
          f"G = 16 names per step, lr 3e-3 constant; held-out: 200 fresh names at T = 1 every 25 steps")
    print(f"{'run':>12} {'base rate':>9} {'>= 80% at':>10} {'steps':>6} {'final reward':>12} {'unique':>7} {'new':>6}")
    for kl in (0.0, 0.1):
        out = fresh(os.path.join(args.out, f"names-kl{kl:g}"))
        run = RLRun(RunConfig(out=out, init_from=base, quiet=True, time_limit=args.budget, eval_every=25, eval_num=200,
                              train=TrainConfig(steps=10 ** 6, lr=3e-3, lr_schedule="constant"),
                              rl=RLConfig(task="names-ending:a", prompts=1, group_size=16, kl=kl)))
        run.train()
        r = run.evaluate_now()  # the final state, scored once more
        rs = rows(out)
        print(f"{'kl ' + format(kl, 'g'):>12} {rs[0]['test_reward']:>9.3f} {first_time(rs, 'test_reward', 0.8):>10} "
              f"{rs[-1]['step']:>6} {r['test_reward']:>12.3f} {r['test_unique']:>7.3f} {r['test_new']:>6.3f}",
              flush=True)


def bench_add(args):
    data = os.path.join(args.out, "add-train.jsonl")
    if not os.path.exists(data):
        os.makedirs(args.out, exist_ok=True)
        write_conversations(data, make_conversations(get_task("add"), "train", 300_000, 0))
    engine = EngineConfig(name="numpy", dtype="float32")
    model = GPTConfig(n_layer=2, n_embd=64, n_head=4, block_size=16)
    short = fresh(os.path.join(args.out, "add-sft-short"))
    SFTRun(RunConfig(out=short, data=data, model=model, engine=engine, quiet=True, eval_every=330, eval_task="add",
                     eval_num=500, eval_docs=100,
                     train=TrainConfig(steps=330, batch_size=32, lr=3e-3, lr_schedule="constant", val_frac=0.01))
           ).train()
    start = rows(short)[-1]["test_pass@1"]
    print(f"3-digit addition: a short fine-tune (330 steps) gives held-out pass@1 {start:.3f}; "
          f"then {args.budget:.0f} s of each, from that checkpoint (numpy engine, float32):")
    # RL from the short fine-tune
    rl_out = fresh(os.path.join(args.out, "add-rl"))
    RLRun(RunConfig(out=rl_out, init_from=short, engine=engine, quiet=True, time_limit=args.budget, eval_every=50,
                    eval_num=500, train=TrainConfig(steps=10 ** 6, lr=3e-4, lr_schedule="constant"),
                    rl=RLConfig(task="add", prompts=16, group_size=8))).train()
    # the same checkpoint, fine-tuned for the same time
    more = fresh(os.path.join(args.out, "add-sft-more"))
    shutil.copytree(short, more)
    cfg = changed(load_config(more), {"train.steps": 10 ** 6, "eval_every": 1000, "time_limit": args.budget,
                                      "quiet": True})
    SFTRun(cfg, resume=True).train()
    print(f"{'arm':>10} {'start':>6} {'60 s':>6} {'150 s':>6} {'end':>6} {'+15 points at':>13} {'steps':>6}")
    for name, out, key in (("RL", rl_out, "test_pass@1"), ("more SFT", more, "test_pass@1")):
        rs = [r for r in rows(out) if r.get(key) is not None]
        t0 = rs[0]["elapsed"]  # RL: its step-0 evaluation; SFT: the short fine-tune's last one
        curve = [(r["elapsed"] - t0, r[key]) for r in rs]
        at60, at150 = ([v for t, v in curve if t <= s][-1] for s in (60, 150))
        hit = [t for t, v in curve if v >= start + 0.15]
        print(f"{name:>10} {start:>6.3f} {at60:>6.3f} {at150:>6.3f} {curve[-1][1]:>6.3f} "
              f"{f'{hit[0]:.0f} s' if hit else 'never':>13} {rs[-1]['step'] - rs[0]['step']:>6}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=("names", "add"))
    ap.add_argument("--budget", type=float, default=None, help="seconds per run (names 180, add 300)")
    ap.add_argument("--out", default=os.path.join("runs", "bench-rl"), help="where the runs are kept")
    args = ap.parse_args()
    args.budget = args.budget or {"names": 180.0, "add": 300.0}[args.which]
    t0 = time.time()
    {"names": bench_names, "add": bench_add}[args.which](args)
    print(f"({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
