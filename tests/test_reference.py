"""The seed's published run, number for number: microgpt/reference.py on its own, the CLI's
textbook and fused graphs, and exact resume."""

import os
import re
import signal
import subprocess
import sys

import pytest
from helpers import (
    FIRST_FIVE,
    NAMES,
    ROOT,
    printed_losses,
    printed_samples,
    recorded_losses,
    reference_run,
    run_cli,
    signal_at_step,
)

from microgpt import checkpoint, reference


def _check_reference(stdout):
    losses = printed_losses(stdout)
    assert losses[1] == "3.3660"
    assert losses[1000] == "2.6497"
    samples = printed_samples(stdout)
    assert len(samples) == 20
    assert samples[:5] == FIRST_FIVE
    return samples


def test_reference_run_through_the_cli(reference_run_cli):
    out, stdout = reference_run_cli
    assert "4,192 parameters" in stdout
    _check_reference(stdout)
    for name in ("model.safetensors", "optimizer.safetensors", "config.json", "state.json"):
        assert os.path.exists(out / "checkpoint" / name)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1000
    assert '"val_loss"' in lines[-1] and '"val_bpb"' in lines[-1]


def _reference_py(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "microgpt.reference", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=1800, check=True).stdout


def _same_run(ref_stdout, cli_stdout, steps):
    """reference.py's printed run equals the CLI's, line for line (4 decimals), and its
    losses equal the CLI's recorded ones at full precision."""
    assert re.findall(r"^step .*$", ref_stdout, re.M) == re.findall(r"^step +\d+ / +\d+ \| loss \d\.\d{4}",
                                                                     cli_stdout, re.M)
    assert len(printed_losses(ref_stdout)) == steps
    assert printed_samples(ref_stdout) == printed_samples(cli_stdout)


def test_reference_py_equals_the_textbook_graph_step_by_step(tmp_path, names_path):
    """10 steps in CI (the whole 1000-step run: the slow test below): the one-file reference and
    `microgpt train --graph textbook` are the same computation, float for float."""
    ref = _reference_py("--steps", "10")
    cli = run_cli("train", "--graph", "textbook", "--steps", "10", "--out", tmp_path / "r", "--eval-every", "0",
                  check=True)
    _same_run(ref, cli.stdout, 10)
    # full precision: reference.train's own losses, in this process, equal the CLI's metrics.jsonl
    import random
    random.seed(42)
    docs = reference.load_docs(NAMES)
    random.shuffle(docs)
    tok = reference.Tokenizer(docs)
    config = reference.Config(tok.vocab_size)
    state_dict = reference.init_params(config)
    losses = reference.train(docs, tok, config, state_dict, 10, log=lambda msg: None)
    assert losses == recorded_losses(tmp_path / "r")


@pytest.mark.slow
def test_reference_py_whole_run_equals_the_cli_textbook_graph(tmp_path, names_path):
    """The seed's whole run, twice on the seed's own graph: ~5 minutes."""
    ref = _reference_py()
    cli = run_cli("train", "--graph", "textbook", "--out", tmp_path / "r", "--eval-every", "0", check=True,
                  timeout=1800)
    _check_reference(ref)
    _check_reference(cli.stdout)
    _same_run(ref, cli.stdout, 1000)


def test_the_textbook_graph_is_reference_py():
    """No second copy of the seed's algorithm: the python engine's textbook graph and the fused
    graph's nodes are reference.py's own Value and gpt (and the numpy engine's graph search, where
    numpy is installed)."""
    from microgpt.engines.python import fused, textbook
    assert textbook.gpt is reference.gpt and textbook.token_losses is reference.token_losses
    assert fused.Value is reference.Value
    pytest.importorskip("numpy")
    from microgpt.engines.numpy_engine import tensor
    assert tensor.Value is reference.Value


def test_sample_continues_the_runs_random_stream(reference_run_cli):
    out, stdout = reference_run_cli
    p = run_cli("sample", "--out", out, check=True)
    assert [s.split("  (")[0] for s in printed_samples(p.stdout)] == printed_samples(stdout)
    assert all(re.search(r"\((in train|in val|new)\)$", line) for line in printed_samples(p.stdout))


def test_resume_from_500_equals_1000_at_once(reference_run_cli, tmp_path):
    """The first 500 steps through the Python API, the rest through the CLI's --resume: exactly the
    CLI's unbroken run (so the API trains the seed's run too, and the two share their checkpoints)."""
    full_out, full_stdout = reference_run_cli
    out = tmp_path / "run"
    assert reference_run(out=str(out), steps=1000, stop_after=500).train() is False
    assert checkpoint.load(str(out)).state["step"] == 500
    second = run_cli("train", "--out", out, "--resume", check=True)
    assert printed_losses(second.stdout)[1000] == "2.6497"
    assert min(printed_losses(second.stdout)) == 501
    assert printed_samples(second.stdout) == printed_samples(full_stdout)
    assert checkpoint.load(str(out)).weights == checkpoint.load(str(full_out)).weights
    steps = [int(l.split('"step": ')[1].split(",")[0]) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 1001))


def test_logged_train_loss_is_the_mean_since_the_previous_log(tmp_path, names_path):
    """--log-every 10 records the mean of the 10 steps' losses, not the last batch alone."""
    run_cli("train", "--out", tmp_path / "a", "--steps", "30", "--eval-every", "0", "--num-samples", "0",
                    check=True)
    tenth = run_cli("train", "--out", tmp_path / "b", "--steps", "30", "--eval-every", "0", "--num-samples", "0",
                    "--log-every", "10", check=True)
    per_step = recorded_losses(tmp_path / "a")
    means = recorded_losses(tmp_path / "b")
    assert len(means) == 3
    for k, mean in enumerate(means):
        assert mean == pytest.approx(sum(per_step[10 * k:10 * k + 10]) / 10, rel=1e-12)
    assert f"loss {means[0]:.4f}" in tenth.stdout


def test_ctrl_c_saves_a_checkpoint_and_resume_is_exact(tmp_path, names_path):
    common = ["--steps", "60", "--n-embd", "8", "--n-head", "2", "--eval-every", "0", "--num-samples", "3",
              "--graph", "textbook"]
    straight = run_cli("train", "--out", tmp_path / "a", *common, check=True)
    out = tmp_path / "b"
    code, rest, err = signal_at_step(["train", "--out", out, *common], 10, signal.SIGINT)
    assert code == 130, err
    assert "saved checkpoint" in rest
    step = checkpoint.load(str(out)).state["step"]
    assert 10 <= step < 60
    resumed = run_cli("train", "--out", out, "--resume", "--num-samples", "3", check=True)
    assert printed_samples(resumed.stdout) == printed_samples(straight.stdout)
    a, b = checkpoint.load(str(tmp_path / "a")).weights, checkpoint.load(str(out)).weights
    for name in a:
        for ra, rb in zip(a[name], b[name]):
            assert ra == pytest.approx(rb, abs=1e-12)
