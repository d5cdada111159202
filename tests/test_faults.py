"""Write failures: a full disk, a read-only folder, no permission, a kill in the middle of a
save. Each ends in one line and a non-zero exit, leaves the previous checkpoint whole, and the
run resumes from it to exactly the weights and Adam moments of a run that never failed.

Failures are injected at the operating-system calls (tests/faultwrap.py: in-process, and around
the real CLI), and made real on a small tmpfs where this machine lets us mount one.
"""

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
from faultwrap import Faults, counting
from helpers import ROOT, assert_one_line_error, printed_samples, run_cli

from microgpt import MicroGPTError, checkpoint
from microgpt.checkpoint import load_config
from microgpt.config import GPTConfig, RunConfig, TrainConfig
from microgpt.stages.pretrain import Run
from microgpt.train import metrics as metrics_module

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 6
TINY = ["--n-embd", "4", "--n-head", "1", "--block-size", "8", "--batch-size", "2", "--eval-every", "0"]



def config(out, words, **run):
    return RunConfig(out=str(out), data=words, model=GPTConfig(n_embd=4, n_head=1, block_size=8),
                     train=TrainConfig(steps=STEPS, batch_size=2), eval_every=0, checkpoint_every=1, quiet=True,
                     **run)


def train(out, words, resume=False, **run):
    cfg = load_config(str(out)) if resume else config(out, words, **run)
    if resume:
        cfg = replace(cfg, quiet=True, stop_after=run.get("stop_after"))
    return Run(cfg, resume=resume).train()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, words):
    """The checkpoint of a run that never failed."""
    out = tmp_path_factory.mktemp("faults-ref") / "run"
    assert train(out, words)
    return checkpoint.load(str(out))


def assert_same_run(out, reference):
    """Weights and Adam moments bit for bit, and every step logged exactly once."""
    got = checkpoint.load(str(out))
    assert got.step == STEPS
    assert got.weights == reference.weights
    assert got.optimizer == reference.optimizer
    with open(os.path.join(str(out), "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == list(range(1, STEPS + 1))


def assert_one_line(e, *words):
    msg = str(e)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


# ---------------------------------------------------------------- a save that fails at any write

@pytest.fixture
def run_at_step_1(tmp_path, words):
    """A run saved at step 1, and a Run object that holds step 2 in memory (not yet saved)."""
    out = tmp_path / "run"
    train(out, words, stop_after=1)
    run = Run(replace(load_config(str(out)), quiet=True), resume=True)
    run.lock.release()
    run.state["step"] = 2
    probe = tmp_path / "probe"
    shutil.copytree(out, probe)
    run.out = str(probe)
    with counting() as calls:
        run.save()
    return out, run, calls.count


def copy_run(out, copy, start):
    """A copy of the run as a save finds it: whole, or left mid-swap by a kill (only .checkpoint.old)."""
    shutil.copytree(out, copy)
    if start == "mid-swap":
        os.rename(copy / "checkpoint", copy / ".checkpoint.old")


@pytest.mark.parametrize("start", ["whole", "mid-swap"])
@pytest.mark.parametrize("err", ["ENOSPC", "EROFS", "EACCES", "EIO"])
def test_a_save_failing_at_any_write_keeps_the_previous_checkpoint(tmp_path, run_at_step_1, err, start):
    out, run, n_calls = run_at_step_1
    assert n_calls >= 20  # 4 files (open, write, fsync, replace each), folders, the swap's renames
    failed = 0
    for at in range(1, n_calls + 2):
        copy = tmp_path / f"at{at}"
        copy_run(out, copy, start)
        run.out = str(copy)
        try:
            with Faults(at=at, err=err):
                run.save()
        except MicroGPTError as e:
            failed += 1
            assert_one_line(e, "could not write the checkpoint", os.strerror(getattr(errno, err)), "--resume")
            assert checkpoint.load(str(copy)).step == 1, f"failing at write {at}"  # the previous one, whole
        else:  # (a best-effort write failed: the folder's fsync, removing the old copy) the new one, whole
            got = checkpoint.load(str(copy))
            assert got.step == 2 and got.weights == checkpoint.load(str(out)).weights
        run.save()  # and the next save, with the disk back, replaces it whole
        assert checkpoint.load(str(copy)).step == 2
        assert sorted(os.listdir(copy)) == [".lock", "checkpoint", "metrics.jsonl"]
    assert failed >= n_calls - 3


CRASH = """
import sys
sys.path[:0] = [{root!r}, {here!r}]
from faultwrap import Faults
from microgpt import checkpoint
from dataclasses import replace
from microgpt.checkpoint import load_config
from microgpt.stages.pretrain import Run
real = checkpoint.save
def save(*args, **kwargs):
    with Faults(at={at}, err="exit"):
        real(*args, **kwargs)
checkpoint.save = save
Run(replace(load_config({out!r}), quiet=True), resume=True).train()  # trains step 2, and dies in its save
"""


@pytest.mark.parametrize("start", ["whole", "mid-swap"])
def test_a_kill_at_any_write_of_a_save_leaves_a_whole_checkpoint(tmp_path, run_at_step_1, words, reference, start):
    """SIGKILL (os._exit: no cleanup at all) at each write of a save in turn, from a whole
    checkpoint or from one an earlier kill left mid-swap: a whole checkpoint is always found
    (the previous one or the new one), and the run resumes from it exactly."""
    out, run, n_calls = run_at_step_1
    found = set()
    for at in range(1, n_calls + 5):
        copy = tmp_path / f"kill{at}"
        copy_run(out, copy, start)
        p = subprocess.run([sys.executable, "-c", CRASH.format(root=ROOT, here=HERE, out=str(copy), at=at)],
                           capture_output=True, text=True, timeout=120)
        if p.returncode == 0:  # past the save's last write: every point has been tried
            break
        assert p.returncode == 9, p.stderr
        found.add(checkpoint.load(str(copy)).step)
        train(copy, words, resume=True)
        assert_same_run(copy, reference)
        shutil.rmtree(copy)
    assert p.returncode == 0
    assert found == {1, 2}  # killed before the swap: the previous one; after it: the new one


# ---------------------------------------------------------------- through the Run API: each write point

class FailingSave:
    """checkpoint.save, failing from its `nth` call on (as a disk that fills up stays full)."""

    def __init__(self, nth, err="ENOSPC", at=5):
        self.nth, self.err, self.at, self.calls = nth, err, at, 0
        self.real = checkpoint.save

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls < self.nth:
            return self.real(*args, **kwargs)
        with Faults(at=self.at, err=self.err):
            return self.real(*args, **kwargs)


@pytest.mark.parametrize("nth,err", [(3, "ENOSPC"), (STEPS, "ENOSPC"), (4, "EROFS"), (2, "EACCES")])
def test_periodic_and_final_saves_that_fail(tmp_path, words, reference, monkeypatch, nth, err):
    """The nth save fails (STEPS: the final one): one line, the step before is kept, resume is exact."""
    out = tmp_path / "run"
    monkeypatch.setattr(checkpoint, "save", FailingSave(nth, err))
    with pytest.raises(MicroGPTError) as e:
        train(out, words)
    assert_one_line(e.value, "could not write the checkpoint", str(out), "--resume")
    monkeypatch.undo()
    assert checkpoint.load(str(out)).step == nth - 1
    train(out, words, resume=True)
    assert_same_run(out, reference)


class FlakyFile:
    """A file whose `nth` write (and every later one) fails with ENOSPC."""

    def __init__(self, f, nth):
        self.f, self.nth, self.writes = f, nth, 0

    def write(self, data):
        self.writes += 1
        if self.writes >= self.nth:
            raise OSError(28, os.strerror(28))
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)


def flaky_open(nth):
    return lambda *a, **k: FlakyFile(open(*a, **k), nth)


def test_metrics_that_cannot_be_written(tmp_path, words, reference, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setattr(metrics_module, "open", flaky_open(4), raising=False)
    with pytest.raises(MicroGPTError) as e:
        train(out, words)
    assert_one_line(e.value, "metrics.jsonl", "No space left on device", "the last checkpoint is kept")
    monkeypatch.undo()
    assert checkpoint.load(str(out)).step == 3
    train(out, words, resume=True)
    assert_same_run(out, reference)


def test_tensorboard_files_that_cannot_be_written(tmp_path, words, monkeypatch):
    from microgpt.train import tensorboard
    out = tmp_path / "run"
    monkeypatch.setattr(tensorboard, "open", flaky_open(3), raising=False)
    with pytest.raises(MicroGPTError) as e:
        train(out, words, tensorboard=True)
    assert_one_line(e.value, "tensorboard", "No space left on device")
    assert checkpoint.load(str(out)).step == 1  # (the first event file write is at init, the 3rd at step 2)


@pytest.mark.parametrize("err", ["EROFS", "EACCES"])
def test_a_run_folder_that_cannot_be_written_at_all(tmp_path, words, err):
    with Faults(["open", "mkdir"], at=1, err=err), pytest.raises(MicroGPTError) as e:
        train(tmp_path / "run", words)
    assert_one_line(e.value, "cannot take the lock", os.strerror(getattr(errno, err)))


def test_checkpoint_and_metrics_files_follow_the_umask(tmp_path, words):
    """(mkstemp would make them private, 0600.)"""
    old = os.umask(0o027)
    try:
        train(tmp_path / "run", words, stop_after=2)
    finally:
        os.umask(old)
    for path in [tmp_path / "run" / "metrics.jsonl",
                 *(tmp_path / "run" / "checkpoint").iterdir()]:
        assert os.stat(path).st_mode & 0o777 == 0o640, path


# ---------------------------------------------------------------- through the real CLI

def fault_cli(calls, at, err, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + HERE)
    return subprocess.run([sys.executable, os.path.join(HERE, "faultwrap.py"), calls, str(at), err, *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory, words):
    out = tmp_path_factory.mktemp("faults-cli") / "ref"
    p = run_cli("train", "--out", out, "--data", words, "--steps", STEPS, *TINY, "--num-samples", "3", check=True)
    return checkpoint.load(str(out)), printed_samples(p.stdout)


# renames: the first save makes one (tmp -> checkpoint), each later save two (checkpoint -> .old,
# tmp -> checkpoint). So the 4th rename is the 3rd save's first, the 5th its second: that one
# fails after the previous checkpoint became .old, and (the disk staying broken) so does putting
# it back: load() finds it as .old, and the next save moves it back first.
@pytest.mark.parametrize("calls,at,err", [("rename", 4, "ENOSPC"), ("rename", 5, "EROFS"),
                                          ("write", 14, "ENOSPC"), ("open", 9, "EACCES")])
def test_cli_train_whose_disk_fails(tmp_path, words, cli_reference, calls, at, err):
    out = tmp_path / "run"
    p = fault_cli(calls, at, err, "train", "--out", out, "--data", words, "--steps", STEPS, *TINY,
                  "--checkpoint-every", "1", "--num-samples", "3")
    assert p.returncode == 2
    assert_one_line_error(p, "could not write the checkpoint", os.strerror(getattr(errno, err)))
    step = checkpoint.load(str(out)).step
    assert 1 <= step < STEPS
    resumed = run_cli("train", "--out", out, "--resume", "--num-samples", "3", check=True)
    ref, samples = cli_reference
    assert printed_samples(resumed.stdout) == samples
    got = checkpoint.load(str(out))
    assert got.weights == ref.weights and got.optimizer == ref.optimizer


@pytest.fixture(scope="module")
def trained(tmp_path_factory, words):
    out = tmp_path_factory.mktemp("faults-pictures") / "run"
    run_cli("train", "--out", out, "--data", words, "--steps", "3", *TINY, "--num-samples", "0", check=True)
    return out


@pytest.mark.parametrize("err", ["EACCES", "ENOSPC"])
@pytest.mark.parametrize("command", ["plot", "attention", "embeddings", "report"])
def test_cli_pictures_into_a_folder_that_refuses_them(trained, tmp_path, command, err):
    pytest.importorskip("matplotlib")
    to = tmp_path / "pictures" / ("report.html" if command == "report" else "x.png")
    args = {"plot": ["plot", trained, "--to", to], "attention": ["attention", "--out", trained, "--text", "emma",
                                                                 "--to", to],
            "embeddings": ["embeddings", "--out", trained, "--to", to], "report": ["report", "--out", trained]}[command]
    before = sorted(os.listdir(trained))
    p = fault_cli("open,write,mkdir", 1, err, *args)
    assert p.returncode == 2
    assert_one_line_error(p, "cannot write", os.strerror(getattr(errno, err)))
    assert sorted(os.listdir(trained)) == before  # nothing half-written left behind


# ---------------------------------------------------------------- a real small filesystem

def _mount(path, options):
    if os.name != "posix" or not shutil.which("mount"):
        return "no mount command"
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    return None if p.returncode == 0 else (p.stderr.strip() or f"mount exited {p.returncode}")


@pytest.fixture
def tmpfs(tmp_path):
    """A 1 MiB tmpfs (root, or CAP_SYS_ADMIN, needed: skipped otherwise, with the reason)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    why = _mount(mnt, "size=1m,mode=0777")
    if why:
        pytest.skip(f"cannot mount a tmpfs here ({why}): the injected failures above cover the same paths")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_real_disk_that_fills_up(tmp_path, words, cli_reference):
    """A tmpfs of 40 KiB holds the lock, metrics.jsonl and one checkpoint of this model, not the
    two that a save holds for a moment: a later save fails for real. Grown again, it resumes."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    why = _mount(mnt, "size=40k")
    if why:
        pytest.skip(f"cannot mount a tmpfs here ({why}): the injected failures above cover the same paths")
    try:
        out = mnt / "run"
        p = run_cli("train", "--out", out, "--data", words, "--steps", STEPS, *TINY, "--checkpoint-every", "1",
                    "--num-samples", "3")
        assert p.returncode == 2
        assert_one_line_error(p, "No space left on device")
        assert 1 <= checkpoint.load(str(out)).step < STEPS  # the last whole checkpoint, on the full disk
        grown = subprocess.run(["mount", "-o", "remount,size=4m", str(mnt)], capture_output=True, text=True)
        assert grown.returncode == 0, grown.stderr
        resumed = run_cli("train", "--out", out, "--resume", "--num-samples", "3", check=True)
        ref, samples = cli_reference
        assert printed_samples(resumed.stdout) == samples
        got = checkpoint.load(str(out))
        assert got.weights == ref.weights and got.optimizer == ref.optimizer
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_read_only_filesystem(tmpfs, trained):
    shutil.copytree(trained, tmpfs / "run")
    p = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True, text=True)
    if p.returncode:
        pytest.skip(f"cannot remount read-only here ({p.stderr.strip()})")
    assert run_cli("sample", "--out", tmpfs / "run", "--num", "2").returncode == 0  # readers need no writes
    before = {f: (tmpfs / "run" / "checkpoint" / f).read_bytes() for f in os.listdir(tmpfs / "run" / "checkpoint")}
    assert_one_line_error(run_cli("train", "--out", tmpfs / "run", "--resume", "--steps", "5"),
                          "Read-only file system")
    assert_one_line_error(run_cli("train", "--out", tmpfs / "new", *TINY), "Read-only file system")
    if importlib.util.find_spec("matplotlib"):
        assert_one_line_error(run_cli("plot", trained, "--to", tmpfs / "loss.png"), "cannot write",
                              "Read-only file system")
    after = {f: (tmpfs / "run" / "checkpoint" / f).read_bytes() for f in os.listdir(tmpfs / "run" / "checkpoint")}
    assert after == before


# ---------------------------------------------------------------- several processes

def test_a_failed_save_under_torchrun_stops_every_process_with_one_error(tmp_path, names_path):
    """Only rank 0 writes: when its save fails, the other processes must stop too (not wait for it
    in the next all-reduce, then crash with a traceback of their own)."""
    torch = pytest.importorskip("torch")
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("this torch build has no gloo backend")
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + HERE, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        os.path.join(HERE, "faultwrap.py"), "rename", "3", "ENOSPC",  # the 2nd save's swap
                        "train", "--engine", "torch", "--dtype", "float64", "--device", "cpu", "--steps", "50",
                        "--batch-size", "4", "--n-embd", "8", "--n-head", "2", "--eval-every", "0",
                        "--num-samples", "0", "--checkpoint-every", "5", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert p.returncode != 0
    ours = [line for line in p.stderr.splitlines() if line.startswith("error: ") or "[rank" in line]
    assert len(ours) == 1 and "could not write the checkpoint" in ours[0], p.stderr  # (the rest is torchrun's)
    assert checkpoint.load(str(out)).step == 5


def test_plot_of_a_metrics_file_nested_past_the_stack_is_one_line(trained, tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write("[" * 100_000 + "\n" + '{"step": 99}\n')
    assert_one_line_error(run_cli("plot", run, "--to", tmp_path / "x.png"), "metrics.jsonl", "not JSON")
