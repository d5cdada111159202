"""What several test files share: running the CLI as a user does, reading its output, building
the seed's reference run through the API, comparing weights. (Fixtures live in conftest.py.)"""

import json
import os
import re
import subprocess
import sys

import pytest

from microgpt.config import EngineConfig, GPTConfig, RunConfig, TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
DATA_DIR = os.path.abspath(os.environ.get("MICROGPT_DATA_DIR", SHARED_DATA))  # (relative: to where the tests started)
NAMES = os.path.join(DATA_DIR, "names.txt")
SHAKESPEARE = os.path.join(DATA_DIR, "tinyshakespeare.txt")
FIRST_FIVE = ["kamon", "ann", "karai", "jaire", "vialan"]
# a tiny data set: runs of a few steps on it start in milliseconds (fixture `words` in conftest.py)
WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail", "emily",
         "ella", "elizabeth", "camila", "luna", "sofia", "avery", "mila", "aria", "scarlett", "penelope", "layla"]


def run_cli(*args, timeout=600, env=None, check=False):
    """Run `python -m microgpt ARGS` as a user would; returns the CompletedProcess (text)."""
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    p = subprocess.run([sys.executable, "-m", "microgpt", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, env=full_env, cwd=ROOT)
    if check and p.returncode != 0:
        raise AssertionError(f"microgpt {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


def signal_at_step(args, step, sig, timeout=120):
    """Start `microgpt ARGS`, send `sig` once it has printed step `step`, wait for it to end:
    (exit status, the rest of its standard output, its standard error)."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "microgpt", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    for line in proc.stdout:
        if line.startswith(f"step {step:4d} "):
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def assert_one_line_error(p, *words):
    """A bad input's promise: non-zero exit, no traceback, one line `error: ...` naming the problem."""
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip() and not l.startswith("note:")]
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("error: ")
    for w in words:
        assert w in lines[0], lines[0]


def printed_losses(stdout):
    """{step: loss as printed (4 decimals)} from a training run's output."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^step +(\d+) / +\d+ \| loss (\d+\.\d+)", stdout, re.M)}


def printed_samples(stdout):
    return re.findall(r"^sample +\d+: (.*)$", stdout, re.M)


def max_abs_diff(a, b):
    """The largest |a - b| over every entry of two {name: matrix} dicts (rows of floats or arrays)."""
    return max(abs(float(x) - float(y)) for name in a for ra, rb in zip(a[name], b[name]) for x, y in zip(ra, rb))


def recorded_losses(run_dir):
    """Every logged step's train loss, at full precision, from the run's metrics.jsonl."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line)["train_loss"] for line in f if line.strip()]


def reference_run(engine="python", model=None, out=None, stop_after=None, **train):
    """The seed's reference run, set up through the API (nothing is written until it trains):
    run.ds, run.config, run.model (at its seeded initial weights), run.rng (after init)."""
    from microgpt.stages.pretrain import Run
    if not os.path.exists(NAMES):
        pytest.skip("names.txt not found: set MICROGPT_DATA_DIR")
    engine = engine if isinstance(engine, EngineConfig) else EngineConfig(name=engine)
    cfg = RunConfig(out=out, data=NAMES, model=model or GPTConfig(), train=TrainConfig(**train), engine=engine,
                    stop_after=stop_after, quiet=True)
    return Run(cfg)


FLOAT64 = {"python": EngineConfig(), "numpy": EngineConfig(name="numpy", dtype="float64"),
           "torch": EngineConfig(name="torch", dtype="float64", device="cpu")}
