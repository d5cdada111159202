"""The seed's published run, number for number, through the real CLI; exact resume."""

import os
import re
import signal
import subprocess
import sys

import pytest

from conftest import FIRST_FIVE, ROOT, printed_losses, printed_samples, run_cli
from microgpt import checkpoint


def _check_reference(stdout):
    losses = printed_losses(stdout)
    assert losses[1] == "3.3660"
    assert losses[1000] == "2.6497"
    samples = printed_samples(stdout)
    assert len(samples) == 20
    assert samples[:5] == FIRST_FIVE
    return samples


def test_reference_run_through_the_cli(reference_run):
    out, stdout = reference_run
    assert "4,192 parameters" in stdout
    _check_reference(stdout)
    for name in ("model.safetensors", "optimizer.safetensors", "config.json", "state.json"):
        assert os.path.exists(out / "checkpoint" / name)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1000
    assert '"val_loss"' in lines[-1]


def test_sample_continues_the_runs_random_stream(reference_run):
    out, stdout = reference_run
    p = run_cli("sample", "--out", out, check=True)
    assert [s.split("  (")[0] for s in printed_samples(p.stdout)] == printed_samples(stdout)
    assert all(re.search(r"\((in train|in val|new)\)$", line) for line in printed_samples(p.stdout))


def test_resume_from_500_equals_1000_at_once(reference_run, tmp_path):
    full_out, full_stdout = reference_run
    out = tmp_path / "run"
    first = run_cli("train", "--out", out, "--stop-after", "500", check=True)
    assert "sample" not in first.stdout
    assert checkpoint.load(str(out)).state["step"] == 500
    second = run_cli("train", "--out", out, "--resume", check=True)
    assert printed_losses(second.stdout)[1000] == "2.6497"
    assert min(printed_losses(second.stdout)) == 501
    assert printed_samples(second.stdout) == printed_samples(full_stdout)
    assert checkpoint.load(str(out)).weights == checkpoint.load(str(full_out)).weights
    steps = [int(l.split('"step": ')[1].split(",")[0]) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 1001))


def test_ctrl_c_saves_a_checkpoint_and_resume_is_exact(tmp_path, names_path):
    common = ["--steps", "60", "--n-embd", "8", "--n-head", "2", "--eval-every", "0", "--num-samples", "3",
              "--graph", "textbook"]
    straight = run_cli("train", "--out", tmp_path / "a", *common, check=True)
    out = tmp_path / "b"
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "microgpt", "train", "--out", str(out), *common,
                            ], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)
    for line in proc.stdout:
        if line.startswith("step   10 "):
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "saved checkpoint" in rest
    step = checkpoint.load(str(out)).state["step"]
    assert 10 <= step < 60
    resumed = run_cli("train", "--out", out, "--resume", "--num-samples", "3", check=True)
    assert printed_samples(resumed.stdout) == printed_samples(straight.stdout)
    a, b = checkpoint.load(str(tmp_path / "a")).weights, checkpoint.load(str(out)).weights
    for name in a:
        for ra, rb in zip(a[name], b[name]):
            assert ra == pytest.approx(rb, abs=1e-12)


@pytest.mark.slow
def test_textbook_graph_reference_run(tmp_path, names_path):
    """The seed's own graph, one node per + and *: ~5 minutes on CPython."""
    p = run_cli("train", "--graph", "textbook", "--out", tmp_path / "run", "--eval-every", "0", check=True,
                timeout=1800)
    _check_reference(p.stdout)
