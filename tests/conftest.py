import json
import os
import re
import subprocess
import sys

import pytest

# The tests' matrices are tiny: a second BLAS/OpenMP thread only adds synchronisation, and on a
# busy 2-core CI machine (torchrun tests start two processes) it can make torch steps 5-50x slower.
# Set before numpy or torch start their thread pools; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
if "MICROGPT_DATA_DIR" not in os.environ and os.path.isdir(SHARED_DATA):
    os.environ["MICROGPT_DATA_DIR"] = SHARED_DATA
DATA_DIR = os.environ.get("MICROGPT_DATA_DIR", SHARED_DATA)
NAMES = os.path.join(DATA_DIR, "names.txt")
SHAKESPEARE = os.path.join(DATA_DIR, "tinyshakespeare.txt")


def run_cli(*args, timeout=600, env=None, check=False):
    """Run `python -m microgpt ARGS` as a user would; returns the CompletedProcess (text)."""
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    p = subprocess.run([sys.executable, "-m", "microgpt", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, env=full_env, cwd=ROOT)
    if check and p.returncode != 0:
        raise AssertionError(f"microgpt {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}")
    return p


@pytest.fixture(scope="session")
def names_path():
    if not os.path.exists(NAMES):
        pytest.skip("names.txt not found: set MICROGPT_DATA_DIR")
    return NAMES


@pytest.fixture
def cli():
    return run_cli


FIRST_FIVE = ["kamon", "ann", "karai", "jaire", "vialan"]


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


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, names_path):
    """`microgpt train` with no options (the python engine, fused graph): (run dir, stdout)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    p = run_cli("train", "--out", out, check=True)
    return out, p.stdout
