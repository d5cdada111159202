"""Interrupt soak: one run stopped again and again at random moments -- SIGINT, SIGTERM, SIGHUP,
SIGKILL, a double Ctrl-C -- and resumed each time ends exactly as the run that was never stopped:
the same weights, Adam moments and samples, and every step logged once. The schedule is seeded;
where in a step (computing, logging, saving) each signal lands is left to the machine.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, printed_samples, run_cli

from microgpt import checkpoint

STEPS = 300
ARGS = ["--n-embd", "8", "--n-head", "2", "--steps", str(STEPS), "--checkpoint-every", "1", "--batch-size", "2",
        "--eval-every", "0", "--num-samples", "5"]
SCHEDULE = ([signal.SIGINT] * 3 + [signal.SIGTERM] * 3 + [signal.SIGKILL] * 6 + [signal.SIGHUP]
            + ["double SIGINT"])


def start(out, resume):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "microgpt", "train", "--out", str(out), *ARGS] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


@pytest.mark.slow  # (~40 s: with -m slow)
def test_interrupted_fourteen_times_equals_never_interrupted(tmp_path, names_path):
    t0 = time.time()
    reference = run_cli("train", "--out", tmp_path / "reference", *ARGS, check=True)
    rng = random.Random(2024)
    schedule = SCHEDULE[:]
    rng.shuffle(schedule)
    out = tmp_path / "run"
    reached, done = 0, []
    for what in schedule:
        target = reached + rng.randint(2, 12)
        proc = start(out, resume=checkpoint.exists(str(out)))
        for line in proc.stdout:
            if line.startswith("step ") and int(line.split()[1]) >= target:
                time.sleep(rng.uniform(0, 0.008))  # somewhere in a later step: computing, logging or saving
                if what == "double SIGINT":
                    proc.send_signal(signal.SIGINT)
                    time.sleep(rng.uniform(0, 0.004))
                    proc.send_signal(signal.SIGINT)
                else:
                    proc.send_signal(what)
                break
        rest, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        if what in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            assert proc.returncode == 128 + what, err
            saved = int(rest.split("saved checkpoint at step ")[1].split()[0])
            assert checkpoint.load(str(out)).step == saved
        elif what == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:  # the second Ctrl-C aborts at once (maybe mid-save): "interrupted", or the first one's save won
            assert proc.returncode == 130, err
        reached = checkpoint.load(str(out)).step  # whatever happened, a whole checkpoint is there
        done.append((what if isinstance(what, str) else signal.Signals(what).name, reached))
        assert reached < STEPS - 20, "the schedule ran past the end of the run: the test would prove less"
    final = start(out, resume=True)
    rest, err = final.communicate(timeout=300)
    assert final.returncode == 0, err
    assert printed_samples(rest) == printed_samples(reference.stdout)
    a, b = checkpoint.load(str(tmp_path / "reference")), checkpoint.load(str(out))
    assert b.step == STEPS
    assert a.weights == b.weights and a.optimizer == b.optimizer  # bit for bit
    with open(out / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == list(range(1, STEPS + 1))
    print(f"\n[soak] {len(done)} interruptions in {time.time() - t0:.1f} s: "
          + ", ".join(f"{name}@{step}" for name, step in done))
