"""microgpt beside makemore (names) and beside nanoGPT's CPU "baby GPT" (tinyshakespeare), one core each.

Issue 17's targets, measured side by side: each side pinned to a core of its own, the two of a pair started together.

    git clone https://github.com/karpathy/makemore /tmp/makemore   # (and karpathy/nanoGPT to /tmp/nanogpt)
    MICROGPT_DATA_DIR=../shared/data python bench/bench_versus.py --makemore /tmp/makemore --nanogpt /tmp/nanogpt
                                      # ~15 minutes: names 300 s, then two nanoGPT runs of 2000 iterations
    ... --budget 30 --max-iters 100   # a short run that shows it works (~3 minutes); --only names|shakespeare
    ... --set names='--engine numpy --arch nanochat ... --warmup-steps 200'   # another microgpt side

names: makemore's README command (`python makemore.py -i names.txt -o names`: its default 204K-parameter
transformer) on core 0, stopped after --budget seconds, beside microgpt (MICROGPT["names"]) on core 1 for the
same budget. Held out: makemore's own test split (the last 1,000 of torch.randperm under its --seed 3407, made
by its own create_datasets); microgpt trains on exactly makemore's 31,033 training names. makemore's figure
is its own "test loss" (all 1,000 names, the mean of ten batch means, printed every 500 steps: the last one
before the stop); microgpt's is its mean per token over the same names.

shakespeare: nanoGPT's README CPU command (config/train_shakespeare_char.py with the README's overrides, 2000
iterations; data made by its own prepare.py) on core 0, beside microgpt numpy (round 1), then microgpt torch
(round 2), on core 1 for nanoGPT's wall time: round 1 predicts it from nanoGPT's first iterations, round 2
takes round 1's. Both hold out the last 10% of the text (nanoGPT 111,540 characters, microgpt the same less
its first token: stream mode splits the text before tokenizing). nanoGPT's figure is its own final "val loss" (20
random windows of 12 x 64), microgpt's the whole validation text. Both in nats per character, whatever the
tokenizer: characters are bytes here (ASCII), so a BPE side's loss per character is its bits per byte x ln 2.
A short run (--max-iters under 1000) also shortens both warm-ups and evaluates nanoGPT at its end.

A microgpt side runs `microgpt train FLAGS --stop-after WARMUP`, times those steps, then `--resume --steps N
--time-limit REST` with N such that the schedule ends within the budget; with `--lr-schedule wsd` (both sides
now) it first trains at the stable rate for all but ~1.3 x --decay-frac of the rest and plans the decay from
that long stretch (the warm-up's rate alone misjudged whole runs by up to 30%). Warm-up and stable rates do not
depend on --steps, and resume is exact: each side is `microgpt train FLAGS --steps N`, printed under its table.
Everything (data, logs, runs) goes into one temp folder, named at the start.
"""

import argparse
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # (the sides import microgpt from here)

MICROGPT = {  # `microgpt train` flags of each microgpt side (--data, --steps, --out added): names, the modern
    # parts (--arch nanochat) with Adam at batch 64, dropout 0.2 and a wsd schedule (the best of 12 300-s runs here);
    # shakespeare, nanochat + Muon, 2 layers at batch 24, BPE-512 (2 characters a token: twice the text a step) and
    # weight decay 0.1 (bench/README.md has the search)
    "names": "--engine numpy --dtype float32 --arch nanochat --n-layer 4 --n-embd 64 --n-head 4 --block-size 16 "
             "--batch-size 64 --lr 3e-3 --lr-schedule wsd --decay-frac 0.4 --warmup-steps 200 --weight-decay 0.1 "
             "--dropout 0.2",
    "shakespeare-numpy": "--engine numpy --dtype float32 --data-mode stream --tokenizer bpe --vocab-size 512 "
                         "--n-layer 2 --n-embd 128 --n-head 4 --block-size 64 --batch-size 24 --arch nanochat "
                         "--optimizer muon --lr 1e-2 --lr-schedule wsd --decay-frac 0.4 --warmup-steps 50 "
                         "--weight-decay 0.1",
}
MICROGPT["shakespeare-torch"] = MICROGPT["shakespeare-numpy"].replace("numpy", "torch")
MAKEMORE_SEED = 3407  # makemore's --seed default: its split is torch.randperm under it
NANOGPT = ("config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20 --log_interval=1 "
           "--block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters={n} "
           "--lr_decay_iters={n} --dropout=0.0")  # its README's CPU command ("I only have a macbook")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
       "PYTHONUNBUFFERED": "1", "PYTHONPATH": ROOT}


def start(cmd, cwd, core, log):
    """A process pinned to `core`, in a session of its own (so it is stopped with its children)."""
    return subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, {core}))


def stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def found(log, pattern):
    """Every match of a regex (one group -> str, more -> tuple) in a log, in order."""
    return re.findall(pattern, read(log), re.M)


def run_checked(cmd, cwd, what):
    r = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"error: {what} failed ({shlex.join(cmd)}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")


def link(src_dir, names, dest):
    os.makedirs(dest, exist_ok=True)
    for n in names:
        if not os.path.exists(os.path.join(src_dir, n)):
            sys.exit(f"error: {os.path.join(src_dir, n)} not found: point the option at a checkout of the repository")
        os.symlink(os.path.join(os.path.abspath(src_dir), n), os.path.join(dest, n))


# ---------------------------------------------------------------- a microgpt side (a child process)

def side(a):
    from microgpt.cli import main as microgpt
    from microgpt.config import TrainConfig
    from microgpt.evaluate import split_loss
    from microgpt.stages.open import open_run
    t0, out = a.t0, os.path.join(a.tmp, a.side)
    flags = shlex.split(a.flags) + ["--data", a.data, "--out", out, "--eval-every", "0", "--num-samples", "0"]
    warmup = int(flags[flags.index("--warmup-steps") + 1])
    flags += ["--val-frac", "0"] if a.side == "names" else []  # (names: makemore's test names, scored below)
    microgpt(["train", *flags, "--steps", "10000000", "--stop-after", str(warmup), "--log-every",
              str(max(1, warmup // 2)), "--quiet"])
    per_step, done = rate(out)  # the time per step of the warm-up's second half
    while a.budget is None:  # round 1 of shakespeare: the parent's prediction of nanoGPT's wall time
        if os.path.exists(a.budget_file):
            a.budget = float(read(a.budget_file))
        time.sleep(0.05)
    rest = a.budget - (time.time() - t0)
    if "wsd" in flags:  # stable at the full rate for most of the time, timed over thousands of steps; then the
        # decay planned from that rate (until it starts, the schedule does not depend on --steps: no jump)
        frac = float(flags[flags.index("--decay-frac") + 1]) if "--decay-frac" in flags else TrainConfig.decay_frac
        microgpt(["train", "--resume", "--out", out, "--time-limit", f"{rest * (1 - 1.3 * frac):.2f}", "--log-every",
                  "100", "--quiet"])
        per_step = rate(out, since=warmup)[0]
        with open(os.path.join(out, "checkpoint", "state.json")) as f:
            done = json.load(f)["step"]  # (where the time limit stopped it: after the last logged step)
        rest = a.budget - (time.time() - t0)
    steps = done + max(1, int((rest - 3.0) / per_step * 0.98))  # (3 s and 2% for resuming and saving)
    microgpt(["train", "--resume", "--out", out, "--steps", str(steps), "--time-limit", f"{max(1.0, rest):.2f}",
              "--log-every", str(max(1, steps // 20)), "--num-samples", "0"])
    wall, run = time.time() - t0, open_run(out)  # (the evaluation below is not timed)
    tok = run.tokenizer  # names: [BOS] name [BOS], as microgpt reads a document
    val = (split_loss(run.model, tok, [([tok.BOS] + tok.encode(n) + [tok.BOS], None) for n in read(a.test).split("\n")])
           if a.side == "names" else run.evaluate_split("val"))
    done = f"{run.state['step']}" + (f" of {steps}" if run.state["step"] < steps else "")  # (--time-limit: short)
    print("RESULT " + json.dumps(dict(steps=done, planned=steps, wall=wall, loss=val["loss"],
                                      bpb=val["bpb"], targets=val["tokens"], flags=a.flags,
                                      bytes=round(val["loss"] * val["tokens"] / (val["bpb"] * math.log(2))))))


def rate(out, since=None):
    """(seconds per step, the last logged step) from a run's metrics.jsonl: the rate between the
    last two logged steps, or with `since`, from the logged step at or before it to the last."""
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [(0, 0.0), *[(r["step"], r["elapsed"]) for r in map(json.loads, f)]]
    (s1, e1) = rows[-2] if since is None else [r for r in rows if r[0] <= since][-1]
    s2, e2 = rows[-1]
    return (e2 - e1) / (s2 - s1), s2


# ---------------------------------------------------------------- the two pairs

def predict_nanogpt(log, elapsed, iters, interval):
    """nanoGPT's wall time, once it has done 5% of its iterations (25 at least): the time so far, the rest
    of the iterations at their median time, and its remaining evaluations, each as long as the first (iteration 0's time
    holds the first evaluation)."""
    dts = [float(x) / 1e3 for x in found(log, r"^iter \d+: loss \S+, time ([\d.]+)ms")]
    if len(dts) < max(25, iters // 20):
        return None
    step = statistics.median(dts[5:])
    evals = sum(1 for k in range(len(dts), iters + 1) if k % interval == 0)
    return elapsed + (iters + 1 - len(dts)) * step + evals * max(0.0, dts[0] - step)


def pair(a, name, ref_cmd, ref_cwd, side_args, budget=None, stop_at=None, predict=None):
    """The reference (core 0) and a microgpt side (core 1; side_args: its name, flags, data, held-out
    names), started together; progress every --progress seconds. -> (reference wall s, its log, microgpt's)."""
    ref_log, side_log = os.path.join(a.tmp, f"{name}-ref.log"), os.path.join(a.tmp, f"{name}-microgpt.log")
    budget_file = os.path.join(a.tmp, f"{name}-budget")
    t0 = time.time()
    ref = start(ref_cmd, ref_cwd, 0, ref_log)
    mg = start([sys.executable, os.path.abspath(__file__), "--side", side_args[0], f"--flags={side_args[1]}", "--t0",
                repr(t0), "--tmp", a.tmp, "--data", side_args[2], "--test", side_args[3], "--budget-file", budget_file,
                *(["--budget", str(budget)] if budget else [])], ROOT, 1, side_log)
    shown, ref_wall = 0.0, None
    while ref.poll() is None or mg.poll() is None:
        time.sleep(0.2)
        now = time.time() - t0
        if predict and budget is None:  # (a reference that ended already: its wall time so far)
            budget = predict(ref_log, now) if ref.poll() is None else now
        if predict and budget and not os.path.exists(budget_file):
            with open(budget_file + ".tmp", "w") as f:
                f.write(repr(budget))
            os.replace(budget_file + ".tmp", budget_file)
            print(f"  [{name}] nanoGPT's wall time predicted from its first iterations: {budget:.1f} s", flush=True)
        if (stop_at and now >= stop_at) or mg.poll():  # (the budget is spent, or the microgpt side failed)
            stop(ref)
        if ref_wall is None and ref.poll() is not None:
            ref_wall = min(now, stop_at or now)
        if now - shown >= a.progress:
            shown = now
            ref_last = (found(ref_log, r"^(?:iter|step) (\d+)(?::| \|)") or ["-"])[-1]
            side_last = " / ".join((found(side_log, r"^step +(\d+) +/ +(\d+)") or [("warm-up",)])[-1])
            print(f"  [{name} {now:5.0f} s] reference: step {ref_last}; microgpt: step {side_last}", flush=True)
    if mg.returncode:
        sys.exit(f"error: the microgpt side failed; its log: {side_log}\n" + read(side_log)[-3000:])
    if ref.returncode and not stop_at:
        sys.exit(f"error: {shlex.join(ref_cmd)} failed; its log: {ref_log}\n" + read(ref_log)[-3000:])
    res = json.loads(found(side_log, r"^RESULT (.*)$")[-1])
    return ref_wall, ref_log, res


def names(a):
    d = os.path.join(a.tmp, "makemore")
    link(a.makemore, ["makemore.py"], d)
    shutil.copy(os.path.join(a.data_dir, "names.txt"), d)
    run_checked([sys.executable, "-c", f"import torch, makemore as m; torch.manual_seed({MAKEMORE_SEED}); "
                 "tr, te = m.create_datasets('names.txt'); "
                 "[open(f, 'w').write(chr(10).join(ds.words)) for f, ds in (('train.txt', tr), ('test.txt', te))]"],
                d, "makemore's split")
    print(f"names: makemore on core 0, microgpt on core 1, {a.budget:g} s each", flush=True)
    wall, log, mg = pair(a, "names", [sys.executable, "makemore.py", "-i", "names.txt", "-o", "names"], d,
                         ("names", MICROGPT["names"], os.path.join(d, "train.txt"), os.path.join(d, "test.txt")),
                         budget=a.budget, stop_at=a.budget)
    ev_step, ev_loss = (found(log, r"^step (\d+) train loss: \S+ test loss: (\S+)") or [("-", "nan")])[-1]
    steps = int((found(log, r"^step (\d+) \|") or [-1])[-1]) + 1
    rows = [("makemore transformer", f"{steps} ({ev_step})", wall, float(ev_loss),
             f"its test loss at step {ev_step}, the last before the stop"),
            (f"microgpt {engine_of(mg['flags'])}", mg["steps"], mg["wall"], mg["loss"],
             f"the same names ({mg['targets']:,} targets)")]
    table(f"names: {a.budget:g} s each, one core each; held out: makemore's 1,000 test names", rows)
    print(f"microgpt: microgpt train {mg['flags']} --steps {mg['planned']}  (trained on makemore's train split)")


def shakespeare(a):
    d = os.path.join(a.tmp, "nanogpt")
    link(a.nanogpt, ["train.py", "model.py", "configurator.py", "config"], d)
    data = os.path.join("data", "shakespeare_char")
    link(os.path.join(a.nanogpt, data), ["prepare.py"], os.path.join(d, data))
    text = os.path.join(a.data_dir, "tinyshakespeare.txt")
    shutil.copy(text, os.path.join(d, data, "input.txt"))  # (so prepare.py downloads nothing)
    run_checked([sys.executable, "data/shakespeare_char/prepare.py"], d, "nanoGPT's prepare.py")
    n = a.max_iters  # (a short run: an evaluation at its end, and a warm-up shorter than the run)
    interval = 250 if n % 250 == 0 else n
    cmd = [sys.executable, "train.py", *NANOGPT.format(n=n).split(), *([f"--eval_interval={n}"] if n % 250 else []),
           *([f"--warmup_iters={n // 10}"] if n < 1000 else [])]
    rows, notes, known = [], [], None
    for engine in a.engines.split(","):
        print(f"shakespeare, round {engine}: nanoGPT ({n} iterations) on core 0, microgpt {engine} on 1", flush=True)
        predict = None if known else (lambda log, now: predict_nanogpt(log, now, n, interval))
        shutil.rmtree(os.path.join(d, "out-shakespeare-char"), ignore_errors=True)
        flags = MICROGPT[f"shakespeare-{engine}"]
        if n < 1000:  # (a short run: microgpt's warm-up shortened too)
            w = re.search(r"--warmup-steps (\d+)", flags).group(1)
            flags = flags.replace(f"--warmup-steps {w}", f"--warmup-steps {max(4, int(w) * n // 2000)}")
        wall, log, mg = pair(a, f"shakespeare-{engine}", cmd, d, (f"shakespeare-{engine}", flags, text, ""),
                             budget=known, predict=predict)
        known = known or wall
        val = found(log, r"^step (\d+): train loss \S+, val loss (\S+)")
        iters = int((found(log, r"^iter (\d+):") or [-1])[-1]) + 1
        rows += [(f"nanoGPT (beside {engine})", str(iters), wall, float(val[-1][1]) if val else math.nan,
                  f"its val loss at step {val[-1][0] if val else '-'} (20 x 12 x 64 random)"),
                 (f"microgpt {engine}", mg["steps"], mg["wall"], mg["bpb"] * math.log(2),  # (per character)
                  f"whole val, {mg['bytes']:,} characters in {mg['targets']:,} tokens")]
        notes.append(f"microgpt {engine}: microgpt train {mg['flags']} --data tinyshakespeare.txt "
                     f"--steps {mg['planned']}")
    table(f"tinyshakespeare: nanoGPT's {n} iterations; microgpt for nanoGPT's wall time; one core each; loss per "
          "character", rows)
    print("\n".join(notes))


def engine_of(flags):
    return re.search(r"--engine (\S+)", flags).group(1)


def table(title, rows):
    print(f"\n{title}\n{'side':<26} {'steps':>14} {'wall s':>7} {'val loss':>9} {'val bpb':>8}  scored on")
    for side_name, steps, wall, loss, what in rows:
        print(f"{side_name:<26} {steps:>14} {wall:>7.1f} {loss:>9.4f} {loss / math.log(2):>8.4f}  {what}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--makemore", metavar="DIR", help="a checkout of github.com/karpathy/makemore")
    ap.add_argument("--nanogpt", metavar="DIR", help="a checkout of github.com/karpathy/nanoGPT")
    ap.add_argument("--only", default="names,shakespeare", help="names, shakespeare or both (default)")
    ap.add_argument("--budget", type=float, default=300.0, help="names: seconds for each side (default 300)")
    ap.add_argument("--max-iters", type=int, default=2000, help="nanoGPT's iterations (default 2000, its README's)")
    ap.add_argument("--engines", default="numpy,torch", help="shakespeare: microgpt engines, a round each")
    ap.add_argument("--data-dir", default=os.environ.get("MICROGPT_DATA_DIR", ""),
                    help="folder with names.txt and tinyshakespeare.txt (default $MICROGPT_DATA_DIR)")
    ap.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines (default 30)")
    ap.add_argument("--set", action="append", default=[], metavar="SIDE=FLAGS",
                    help=f"replace a microgpt side's flags (sides: {', '.join(MICROGPT)}), e.g. "
                         "names='--engine numpy --arch nanochat --optimizer muon ...'")
    for hidden in ("--side", "--flags", "--t0", "--tmp", "--data", "--test", "--budget-file"):  # (a microgpt side)
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.side:
        a.t0, a.budget = float(a.t0), a.budget if "--budget" in sys.argv else None
        return side(a)
    if os.cpu_count() < 2 or len(os.sched_getaffinity(0)) < 2:
        ap.error("needs 2 cores: each side is pinned to one of cores 0 and 1")
    for assignment in a.set:
        side_name, _, flags = assignment.partition("=")
        if side_name not in MICROGPT or "--warmup-steps" not in flags:
            ap.error(f"--set {assignment!r}: give SIDE=FLAGS, SIDE one of {', '.join(MICROGPT)}, FLAGS with "
                     "--warmup-steps N")
        MICROGPT[side_name] = flags
    if any(f"shakespeare-{e}" not in MICROGPT for e in a.engines.split(",")):
        ap.error(f"--engines {a.engines!r}: numpy, torch or both")
    a.data_dir = os.path.abspath(a.data_dir)
    for what in a.only.split(","):
        checkout, flag, file = {"names": (a.makemore, "--makemore", "names.txt"),
                                "shakespeare": (a.nanogpt, "--nanogpt", "tinyshakespeare.txt")}.get(what, [None] * 3)
        if not flag or not checkout:
            ap.error(f"--only {what}: unknown (names or shakespeare)" if not flag else f"{what} needs {flag} DIR")
        if not os.path.isfile(os.path.join(a.data_dir, file)):
            ap.error(f"{file} not found in {a.data_dir!r}: pass --data-dir DIR or set MICROGPT_DATA_DIR")
    a.tmp = tempfile.mkdtemp(prefix="bench-versus-")
    print(f"logs and runs in {a.tmp}", flush=True)
    for what in a.only.split(","):
        {"names": names, "shakespeare": shakespeare}[what](a)


if __name__ == "__main__":
    main()
