"""bench/gpu_check.sh, the GPU checks in one script, as far as a machine without a GPU can try it: it parses,
says in one line that there is no CUDA GPU (exit 2, every check recorded as skipped), and its plumbing runs
end to end on the CPU (--cpu-dry-run, slow: torch.compile on the CPU takes minutes)."""

import json
import os
import shutil
import subprocess

import pytest
from helpers import DATA_DIR, ROOT

SCRIPT = os.path.join(ROOT, "bench", "gpu_check.sh")
pytestmark = pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")


def gpu_check(tmp_path, *args, env=None):
    full_env = dict(os.environ, MICROGPT_DATA_DIR=DATA_DIR, **(env or {}))
    p = subprocess.run(["bash", SCRIPT, "--out", str(tmp_path / "check"), *args], capture_output=True, text=True,
                       timeout=900, env=full_env, cwd=tmp_path)
    with open(tmp_path / "check" / "summary.json") as f:
        return p, json.load(f)


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", SCRIPT]).returncode == 0


def test_without_cuda_it_says_so_and_records_every_check_as_skipped(tmp_path):
    pytest.importorskip("torch")
    p, summary = gpu_check(tmp_path, env={"CUDA_VISIBLE_DEVICES": ""})  # (hides a GPU, where there is one)
    assert p.returncode == 2 and p.stderr.startswith("error: no CUDA GPU") and len(p.stderr.splitlines()) == 1
    assert summary["counts"] == {"pass": 0, "fail": 0, "skip": 8}
    assert all(c["note"].startswith("no CUDA GPU") for c in summary["checks"].values())


def test_an_unknown_argument_is_one_line(tmp_path):
    p = subprocess.run(["bash", SCRIPT, "--gpus", "8"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr == "error: unknown argument --gpus: use --nanogpt PATH, --out DIR or " \
                                             "--cpu-dry-run\n"


@pytest.mark.slow
def test_a_dry_run_on_the_cpu_records_each_check(tmp_path):
    pytest.importorskip("torch")
    p, summary = gpu_check(tmp_path, "--cpu-dry-run", "--nanogpt", str(tmp_path / "no-such-checkout"))
    checks = summary["checks"]
    assert p.returncode == 1, p.stdout + p.stderr  # (the nanoGPT path given is no checkout: that check fails)
    assert [k for k, c in checks.items() if c["status"] == "fail"] == ["nanogpt"]
    assert [k for k, c in checks.items() if c["status"] == "skip"] == ["bench_eager", "bench_compile"]
    assert all(checks[k]["step"] == 20 and checks[k]["val_loss"] > 0 for k in ("train_float32", "train_compile"))
    assert checks["ddp_one_gpu"]["note"] == "step 6, max |weights difference| 0"
