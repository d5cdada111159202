"""One writer per run directory, and readers that never see a half-written checkpoint.

A second `train` on a run being trained refuses in one line naming the process that holds it;
a lock left by a killed process is taken over; `sample`, `eval` and checkpoint.load, run over
and over while a training saves a checkpoint every step, always get one whole checkpoint.
"""

import os
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
from helpers import ROOT, assert_one_line_error, run_cli

from microgpt import MicroGPTError, checkpoint, lock
from microgpt.checkpoint import load_config
from microgpt.config import GPTConfig, RunConfig, TrainConfig
from microgpt.stages.pretrain import Run

TINY = ["--n-embd", "4", "--n-head", "1", "--block-size", "8", "--batch-size", "2", "--eval-every", "0"]



def start_training(out, words, steps, *more):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "microgpt", "train", "--out", str(out), "--data", words,
                             "--steps", str(steps), *TINY, "--num-samples", "0", *more],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def wait_for_step(proc, step):
    for line in proc.stdout:
        if line.startswith(f"step {step:4d} "):
            return
    raise AssertionError(f"the training ended before step {step}: {proc.stderr.read()}")


def test_a_second_writer_is_refused_naming_the_first(tmp_path, words):
    out = tmp_path / "run"
    first = start_training(out, words, 100_000, "--checkpoint-every", "1")
    try:
        wait_for_step(first, 5)
        for extra in (["--resume", "--steps", "100000"], ["--overwrite", "--steps", "3"]):
            p = run_cli("train", "--out", out, "--data", words, *TINY, *extra, timeout=60)
            assert p.returncode == 2
            assert_one_line_error(p, "is being written by process", f"process {first.pid} ", "train")
    finally:
        first.send_signal(signal.SIGTERM)
        rest, err = first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM, err  # the first run went on unharmed, and saved
    step = checkpoint.load(str(out)).step
    assert step >= 5 and f"saved checkpoint at step {step} " in rest


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, words):
    out = tmp_path / "run"
    first = start_training(out, words, 100_000, "--checkpoint-every", "1")
    wait_for_step(first, 3)
    first.kill()
    first.wait()
    assert lock.RunLock(str(out)).owner()["pid"] == first.pid  # the file is still there, naming a dead process
    p = run_cli("train", "--out", out, "--resume", "--stop-after", str(checkpoint.load(str(out)).step + 2),
                "--num-samples", "0")
    assert p.returncode == 0, p.stderr


def test_without_flock_the_lock_file_names_its_owner(tmp_path, monkeypatch):
    """(Where the OS has no flock, as Windows: a lock whose owner is dead is taken over.)"""
    monkeypatch.setattr(lock, "fcntl", None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path = tmp_path / lock.LOCK
    path.write_text(f'{{"pid": {int(dead.stdout)}, "host": "h", "command": "c", "started": "s"}}\n')
    held = lock.RunLock(str(tmp_path)).acquire()  # its owner is gone
    with pytest.raises(MicroGPTError, match=f"being written by process {os.getpid()} "):
        lock.RunLock(str(tmp_path)).acquire()  # ... but we are alive
    held.release()
    assert not path.exists()
    lock.RunLock(str(tmp_path)).acquire().release()


def test_the_lock_is_released_whatever_ends_the_training(tmp_path, words):
    cfg = RunConfig(out=str(tmp_path / "run"), data=words, model=GPTConfig(n_embd=4, n_head=1, block_size=8),
                    train=TrainConfig(steps=5), eval_every=0, stop_after=3, quiet=True)
    Run(cfg).train()
    with pytest.raises(MicroGPTError, match="already holds a run"):
        Run(cfg).train()
    lock.RunLock(cfg.out).acquire().release()  # free after each of them
    resumed = replace(load_config(cfg.out), stop_after=2, quiet=True)
    with pytest.raises(MicroGPTError, match="not past"):
        Run(resumed, resume=True).train()  # (a resumed run holds the lock from its start)
    lock.RunLock(cfg.out).acquire().release()


def test_readers_never_see_a_half_written_checkpoint(tmp_path, words, monkeypatch):
    """A training saves every step (~2 ms each); meanwhile this process loads the checkpoint as
    fast as it can, and `microgpt sample` / `eval` run now and then. Every load succeeds, and
    what it returns is one checkpoint: weights, moments and state of the same step, as a
    reference run (the same run, in this process) saved them."""
    steps = 500
    saved = {}
    real_save = checkpoint.save

    def remember(run_dir, **kw):
        real_save(run_dir, **kw)
        ck = checkpoint.load(run_dir)
        saved[ck.step] = (ck.weights, ck.optimizer, ck.state["rng_state"])
    monkeypatch.setattr(checkpoint, "save", remember)
    Run(RunConfig(out=str(tmp_path / "ref"), data=words, model=GPTConfig(n_embd=4, n_head=1, block_size=8),
                  train=TrainConfig(steps=steps, batch_size=2), eval_every=0, checkpoint_every=1, quiet=True)).train()
    monkeypatch.undo()
    assert len(saved) == steps

    out = tmp_path / "run"
    writer = start_training(out, words, steps, "--checkpoint-every", "1")
    loads, cli_runs, last = 0, 0, 0
    while writer.poll() is None:
        if not checkpoint.exists(str(out)):
            continue
        ck = checkpoint.load(str(out))
        assert ck.step >= last
        last = ck.step
        assert (ck.weights, ck.optimizer, ck.state["rng_state"]) == saved[ck.step], f"a mixed checkpoint at {ck.step}"
        loads += 1
        if loads % 25 == 0:
            p = run_cli("sample" if cli_runs % 2 == 0 else "eval", "--out", out)
            assert p.returncode == 0, p.stderr
            cli_runs += 1
    assert writer.wait() == 0, writer.stderr.read()
    assert loads >= 50 and cli_runs >= 2, (loads, cli_runs)
