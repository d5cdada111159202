"""From MicroGPT to ChatGPT, in miniature: pretrain -> fine-tune -> RL -> evaluate -> chat.

    MICROGPT_DATA_DIR=../shared/data python examples/chain.py             # 7-10 minutes on 2 cores
    MICROGPT_DATA_DIR=../shared/data python examples/chain.py --quick     # ~2 minutes, weaker numbers

Through the Python API; the same with the command line:

    microgpt train --data names.txt --engine numpy --dtype float32 --n-layer 4 --n-embd 64 --n-head 4 \\
        --block-size 32 --batch-size 32 --lr 3e-3 --lr-schedule cosine --warmup-steps 100 --steps 4000 \\
        --out runs/chain/base
    microgpt tasks make --task add,reverse:8,count:8 --num 60000 --to runs/chain/tasks.jsonl
    microgpt sft --from runs/chain/base --data runs/chain/tasks.jsonl --batch-size 64 --lr 3e-3 \\
        --lr-schedule cosine --warmup-steps 100 --steps 2500 --out runs/chain/sft
    microgpt rl --from runs/chain/sft --task add,reverse:8,count:8 --prompts 16 --group-size 8 \\
        --temperature 0.8 --lr 1e-4 --lr-schedule constant --steps 1000000 --time-limit 240 --out runs/chain/rl
    microgpt eval --out runs/chain/rl --task count:8 --num 500
    microgpt chat --out runs/chain/rl

1. pretrain: a 4-layer GPT on the 32,033 names (the seed's data): it writes names.
2. sft: starting from it, conversations of three tasks with checkable answers (add two 3-digit
   numbers, spell a name backwards, count a letter in a name); the tokenizer gains the chat
   template's special tokens and the digits, the model learns the assistant's tokens only.
3. rl: the policy gradient on the tasks' own rewards (1 for a right answer), G answers per
   problem, advantage = reward - the group's mean.
4. eval: greedy pass@1 on 500 held-out problems of each task, after each stage; then a chat.
"""

import argparse
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from microgpt.config import EngineConfig, GPTConfig, RLConfig, RunConfig, TrainConfig
from microgpt.data.conversations import write_conversations
from microgpt.evaluate import evaluate_task
from microgpt.stages.chat import ChatSession
from microgpt.stages.pretrain import Run
from microgpt.stages.rl import RLRun
from microgpt.stages.sft import SFTRun
from microgpt.tasks import get_task, make_conversations

TASKS = ["add", "reverse:8", "count:8"]
ENGINE = EngineConfig(name="numpy", dtype="float32")
PROMPTS = ["123+456", "907+195", "reverse emma", "reverse karpathy", "count a in banana", "count z in olivia"]


def stage(name, run):
    t0 = time.time()
    print(f"\n== {name}: {run.cfg.out}", flush=True)
    run.train()
    return time.time() - t0


def pass_at_1(run, n):
    if "<|assistant_start|>" not in run.tokenizer.special_tokens:
        return {t: None for t in TASKS}  # not a chat model yet: it cannot be asked
    return {t: evaluate_task(run.model, run.tokenizer, run.config.block_size, get_task(t), n,
                             random.Random(0))["pass@1"] for t in TASKS}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join("runs", "chain"))
    ap.add_argument("--quick", action="store_true", help="a few hundred steps per stage (a smoke run)")
    args = ap.parse_args()
    q = args.quick
    shutil.rmtree(args.out, ignore_errors=True)
    out = lambda name: os.path.join(args.out, name)
    n_eval = 100 if q else 500
    table, times = {}, {}

    base = Run(RunConfig(out=out("base"), engine=ENGINE, log_every=500, eval_every=1000,
                         model=GPTConfig(n_layer=4, n_embd=64, n_head=4, block_size=32),
                         train=TrainConfig(steps=300 if q else 4000, batch_size=32, lr=3e-3, lr_schedule="cosine",
                                           warmup_steps=100)))
    times["pretrain"] = stage("pretrain on names", base)
    print("samples:", ", ".join(base.sample(8, temperature=0.8)))
    table["pretrain"] = pass_at_1(base, n_eval)

    data = out("tasks.jsonl")
    write_conversations(data, make_conversations(get_task(",".join(TASKS)), "train", 6000 if q else 60000, 0))
    sft = SFTRun(RunConfig(out=out("sft"), data=data, init_from=out("base"), engine=ENGINE, log_every=250,
                           eval_every=500, eval_task=",".join(TASKS), eval_num=150,
                           train=TrainConfig(steps=300 if q else 2500, batch_size=64, lr=3e-3, lr_schedule="cosine",
                                             warmup_steps=100, val_frac=0.01)))
    times["sft"] = stage("supervised fine-tuning on conversations", sft)
    table["sft"] = pass_at_1(sft, n_eval)

    rl = RLRun(RunConfig(out=out("rl"), init_from=out("sft"), engine=ENGINE, log_every=50, eval_every=200,
                         eval_num=150, time_limit=30 if q else 240,
                         train=TrainConfig(steps=10 ** 6, lr=1e-4, lr_schedule="constant"),
                         rl=RLConfig(task=",".join(TASKS), prompts=16, group_size=8, temperature=0.8)))
    times["rl"] = stage("reinforcement learning on the tasks' rewards", rl)
    table["rl"] = pass_at_1(rl, n_eval)

    print(f"\n== greedy pass@1 on {n_eval} held-out problems per task")
    print(f"{'stage':>10} " + " ".join(f"{t:>10}" for t in TASKS) + f" {'time':>8}")
    for name, scores in table.items():
        cells = " ".join(f"{'-':>10}" if v is None else f"{v:>10.3f}" for v in scores.values())
        print(f"{name:>10} {cells} {times[name]:>7.0f}s")

    print("\n== a chat (greedy)")
    session = ChatSession(rl.model, rl.tokenizer, rl.config.block_size, random.Random(0), temperature=0.0)
    for prompt in PROMPTS:
        print(f"> {prompt}\n{session.say(prompt)}")
        session.reset()
    print(f"\n({sum(times.values()):.0f} s of training in all; runs in {args.out}: microgpt chat --out {out('rl')})")


if __name__ == "__main__":
    main()
