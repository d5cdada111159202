"""Signals: SIGINT (Ctrl-C), SIGTERM (a scheduler, `kill`) and SIGHUP (a closed terminal) finish
the step, save, and exit non-zero with the resume hint; resuming gives exactly the run that was
never stopped. In one process through the Run API (which every training command, post-training
included, goes through), and under torchrun, where every process stops at the same step and only
rank 0 saves. (The interrupt soak, many signals and SIGKILLs in one run: test_soak.py.)
"""

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
from helpers import ROOT, max_abs_diff, recorded_losses, run_cli, signal_at_step

from microgpt import checkpoint
from microgpt.checkpoint import load_config
from microgpt.config import GPTConfig, RunConfig, TrainConfig
from microgpt.stages.pretrain import Run

STEPS = 8



def config(out, words):
    return RunConfig(out=str(out), data=words, model=GPTConfig(n_embd=4, n_head=1, block_size=8),
                     train=TrainConfig(steps=STEPS, batch_size=2), eval_every=0, quiet=True)


class SignalledAt(Run):
    """A run that receives `signals` (one after another) while it computes step `at`."""

    def __init__(self, *args, at, signals, **kwargs):
        super().__init__(*args, **kwargs)
        self.at, self.signals = at, signals

    def batch(self, step):
        if step == self.at:
            for sig in self.signals:
                os.kill(os.getpid(), sig)
        return super().batch(step)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, words):
    out = tmp_path_factory.mktemp("signals-ref") / "run"
    Run(config(out, words)).train()
    return checkpoint.load(str(out))


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_finishes_the_step_saves_and_exits(tmp_path, words, reference, sig):
    sig = getattr(signal, sig)
    out = tmp_path / "run"
    before = signal.getsignal(sig)
    with pytest.raises(SystemExit) as e:
        SignalledAt(config(out, words), at=3, signals=[sig]).train()
    assert e.value.code == 128 + sig
    assert signal.getsignal(sig) == before  # handlers are put back
    assert checkpoint.load(str(out)).step == 4  # the step in progress (4th) was finished, then saved
    # (the lock was released: this would be refused otherwise)
    Run(replace(load_config(str(out)), quiet=True), resume=True).train()
    got = checkpoint.load(str(out))
    assert got.weights == reference.weights and got.optimizer == reference.optimizer


def test_a_second_ctrl_c_aborts_at_once_and_keeps_the_last_checkpoint(tmp_path, words):
    out = tmp_path / "run"
    cfg = replace(config(out, words), checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        SignalledAt(cfg, at=3, signals=[signal.SIGINT, signal.SIGINT]).train()
    assert checkpoint.load(str(out)).step == 3  # the last periodic save; the step in progress is dropped
    assert Run(replace(load_config(str(out)), quiet=True), resume=True).train()


def test_ctrl_c_through_the_cli_prints_the_resume_hint(tmp_path, words):
    code, out, err = signal_at_step(["train", "--out", tmp_path / "run", "--data", words, "--steps", "3000",
                                     "--n-embd", "4", "--n-head", "1", "--eval-every", "0"], 20, signal.SIGTERM,
                                    timeout=60)
    assert code == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert "SIGTERM: finishing this step" in out and "continue with --resume" in out


# ---------------------------------------------------------------- torchrun

torch = pytest.importorskip("torch")
needs_gloo = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="this torch build has no gloo backend")
DDP = ["train", "--engine", "torch", "--dtype", "float64", "--device", "cpu", "--steps", "150", "--batch-size", "4",
       "--n-embd", "8", "--n-head", "2", "--eval-every", "0", "--num-samples", "0"]
# a wrapper that runs microgpt and records, per process, its pid and rank, and every save
SPY = """
import json, os, sys
sys.path.insert(0, {root!r})
log = open({log!r}, "a")
def note(**kw):
    log.write(json.dumps(dict(pid=os.getpid(), rank=int(os.environ.get("RANK", "0")), **kw)) + "\\n"); log.flush()
note(event="start")
from microgpt import checkpoint
real = checkpoint.save
def save(run_dir, **kw):
    note(event="save", step=kw["state"]["step"])
    return real(run_dir, **kw)
checkpoint.save = save
from microgpt.cli import main
main(sys.argv[1:])
"""


def torchrun(spy, *args, popen=False):
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(spy),
           *map(str, args)]
    if popen:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def events(log):
    with open(log) as f:
        return [json.loads(line) for line in f]


@pytest.fixture
def spy(tmp_path):
    log = tmp_path / "spy.jsonl"
    path = tmp_path / "spy.py"
    path.write_text(SPY.format(root=ROOT, log=str(log)))
    return path, log


@pytest.fixture(scope="module")
def single(tmp_path_factory, names_path):
    """The same run in one process: what the interrupted and resumed torchrun run must equal."""
    out = tmp_path_factory.mktemp("signals-single") / "run"
    run_cli(*DDP, "--out", out, env={"OMP_NUM_THREADS": "1"}, check=True)
    return out


def stop_torchrun_at(spy_path, out, step, send):
    proc = torchrun(spy_path, *DDP, "--out", out, popen=True)
    for line in proc.stdout:
        if line.startswith(f"step {step:4d} "):
            send(proc)
            break
    rest, err = proc.communicate(timeout=120)
    return proc.returncode, rest, err


def check_one_save_at_the_same_step(log, rest, out):
    saves = [e for e in events(log) if e["event"] == "save"]
    assert len(saves) == 1 and saves[0]["rank"] == 0, saves  # rank 0 saves, once
    step = saves[0]["step"]
    assert f"saved checkpoint at step {step} " in rest and rest.count("saved checkpoint") == 1
    assert checkpoint.load(str(out)).step == step
    return step


@needs_gloo
@pytest.mark.slow  # (~35 s: with -m slow; SIGINT to every process stays in every run, below)
def test_sigterm_to_torchrun_stops_every_process_at_one_step(tmp_path, spy, single):
    """SIGTERM to the torchrun agent (what a scheduler sends): it forwards the signal to every
    worker, they finish the step together, rank 0 saves once; --resume under torchrun then gives
    the uninterrupted single-process run (float64, <= 1e-9)."""
    spy_path, log = spy
    out = tmp_path / "ddp"
    rc, rest, err = stop_torchrun_at(spy_path, out, 10, lambda p: p.send_signal(signal.SIGTERM))
    assert rc != 0
    assert "SIGTERM: finishing this step" in rest
    step = check_one_save_at_the_same_step(log, rest, out)
    assert 10 <= step < 150
    resumed = torchrun(spy_path, *DDP, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = checkpoint.load(str(single)), checkpoint.load(str(out))
    assert b.step == 150
    assert max_abs_diff(a.weights, b.weights) <= 1e-9
    assert max_abs_diff(a.optimizer["m"], b.optimizer["m"]) <= 1e-9
    assert max_abs_diff(a.optimizer["v"], b.optimizer["v"]) <= 1e-9
    assert len(recorded_losses(out)) == 150  # every step logged once, across the two parts


@needs_gloo
@pytest.mark.parametrize("target", [pytest.param("rank 1 only", marks=pytest.mark.slow), "every process"])
def test_a_signal_to_some_workers_stops_them_all_at_one_step(tmp_path, spy, target):
    """SIGTERM to one worker only (rank 1, which does not save), or SIGINT to every process at
    once (as a terminal's Ctrl-C would reach a process group): all stop at the same step."""
    spy_path, log = spy
    out = tmp_path / "ddp"

    def send(proc):
        workers = {e["rank"]: e["pid"] for e in events(log) if e["event"] == "start"}
        if target == "rank 1 only":
            os.kill(workers[1], signal.SIGTERM)
        else:
            for pid in (*workers.values(), proc.pid):
                os.kill(pid, signal.SIGINT)
    rc, rest, err = stop_torchrun_at(spy_path, out, 10, send)
    assert rc != 0
    check_one_save_at_the_same_step(log, rest, out)
