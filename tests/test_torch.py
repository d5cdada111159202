"""The torch engine beyond float64 equality with the other engines (tests/test_engines_agree.py):
DDP across processes, float32 checkpoints, torch.compile, bf16, device and dtype options.
"""

import functools
import json
import os
import random
import shutil
import subprocess
import sys

import pytest
from helpers import FLOAT64, ROOT, assert_one_line_error, max_abs_diff, recorded_losses, reference_run, run_cli

from microgpt import checkpoint
from microgpt.config import EngineConfig, GPTConfig
from microgpt.params import init_weights, param_shapes

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
from microgpt.engines.torch_engine.engine import Model  # noqa: E402

ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # tiny matrices, 2-core CI: one thread per process is fastest
TINY = ["--n-embd", "16", "--n-head", "4", "--eval-every", "0", "--num-samples", "0"]


def options(**kw):
    return EngineConfig(**{"name": "torch", "dtype": "float64", "device": "cpu", **kw})


def test_parameters_are_the_seeds_names_and_shapes():
    config = GPTConfig(vocab_size=7, n_layer=2, n_embd=8, n_head=2, block_size=5)
    model = Model(config, init_weights(config, random.Random(0)), options())
    assert [(n, list(p.shape)) for n, p in model.module.named_parameters()] == param_shapes(config)
    w = model.get_weights()
    assert all(isinstance(m, np.ndarray) and m.dtype == np.float64 and m.ndim == 2 for m in w.values())
    assert model.safetensors_dtype == "F64"


def test_float32_is_the_default_and_close_to_float64():
    config = GPTConfig(vocab_size=7, n_layer=2, n_embd=8, n_head=2, block_size=5)
    weights = init_weights(config, random.Random(0))
    f32 = Model(config, weights, options(dtype=None))
    f64 = Model(config, weights, options())
    assert f32.safetensors_dtype == "F32" and f32.module.wte.dtype == torch.float32
    seqs = [[6, 1, 2, 6], [6, 3, 6]]
    (l32, g32), (l64, g64) = f32.loss_and_grads(seqs), f64.loss_and_grads(seqs)
    assert abs(l32 - l64) < 1e-5 and max_abs_diff(g32, g64) < 1e-5


def test_dropout_changes_training_only_and_a_resumed_run_draws_the_same_masks():
    from microgpt.config import TrainConfig
    config = GPTConfig(vocab_size=7, n_layer=2, n_embd=16, n_head=2, block_size=6)
    weights = init_weights(config, random.Random(1))
    batches = [[[6, 1, 2, 3, 6], [6, (s % 5) + 1, 4, 6]] for s in range(4)]
    tc = TrainConfig(steps=4, dropout=0.3)
    plain = Model(config, weights, options())
    assert plain.train_step(batches[0], 0.01, 1, tc) != Model(config, weights, options()).train_step(
        batches[0], 0.01, 1, TrainConfig(steps=4))  # dropout is on in training...
    assert plain.token_losses(batches[1]) == plain.token_losses(batches[1])  # ...and off in evaluation
    straight, first = Model(config, weights, options()), Model(config, weights, options())
    for t in range(1, 5):
        straight.train_step(batches[t - 1], 0.01, t, tc)
    for t in range(1, 3):
        first.train_step(batches[t - 1], 0.01, t, tc)
    resumed = Model(config, first.get_weights(), options())
    resumed.set_optimizer_state(first.get_optimizer_state())
    for t in range(3, 5):
        resumed.train_step(batches[t - 1], 0.01, t, tc)
    assert max_abs_diff(resumed.get_weights(), straight.get_weights()) == 0.0


# ---------------------------------------------------------------- DDP

def torchrun(nproc, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, **ONE_THREAD)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(nproc), "-m", "microgpt", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="this torch build has no gloo backend")
def test_two_gloo_processes_train_as_one_process_and_resume(tmp_path, names_path):
    """torchrun, 2 CPU processes, global batch 4 (2 names each): weights after 6 steps (3, then
    --resume for 3) equal one process with the same global batch, in float64, to 1e-9."""
    common = ["train", "--engine", "torch", "--dtype", "float64", "--device", "cpu", "--steps", "6",
              "--batch-size", "4", "--lr", "0.02", *TINY]
    # the two halves of a batch hold different numbers of tokens: a per-rank mean would be wrong
    ds = reference_run().ds
    shard_tokens = [[sum(len(s) - 1 for s in ds.train_batch(step, 4, 42)[2 * r:2 * r + 2]) for r in (0, 1)]
                    for step in range(6)]
    assert any(a != b for a, b in shard_tokens)

    single = tmp_path / "single"  # `common` in this process (already one thread: conftest.py)
    from microgpt.config import RunConfig, TrainConfig
    from microgpt.stages.pretrain import Run
    assert Run(RunConfig(out=str(single), data=names_path, model=GPTConfig(n_embd=16, n_head=4),
                         engine=FLOAT64["torch"], train=TrainConfig(steps=6, batch_size=4, lr=0.02), eval_every=0,
                         quiet=True)).train()
    ddp = tmp_path / "ddp"
    first = torchrun(2, *common, "--out", ddp, "--stop-after", "3")
    assert first.returncode == 0, first.stderr
    second = torchrun(2, *common, "--out", ddp, "--resume")
    assert second.returncode == 0, second.stderr

    a, b = checkpoint.load(str(single)), checkpoint.load(str(ddp))
    assert b.state["step"] == 6
    assert max_abs_diff(a.weights, b.weights) <= 1e-9
    assert max_abs_diff(a.optimizer["v"], b.optimizer["v"]) <= 1e-9
    single_losses, ddp_losses = recorded_losses(single), recorded_losses(ddp)
    assert len(ddp_losses) == 6
    assert max(abs(x - y) for x, y in zip(single_losses, ddp_losses)) <= 1e-9  # the logged loss is global
    for out in (first.stdout, second.stdout):  # only rank 0 logs
        assert out.count("data: ") == 1 and out.count("trained 3 steps") == 1


# ---------------------------------------------------------------- checkpoints across engines

def test_a_float32_run_saves_F32_and_the_python_engine_samples_it_alike(tmp_path, names_path):
    """(float64 runs moving between engines, resume included: test_engines_agree.py)"""
    out = tmp_path / "torch32"
    p = run_cli("train", "--engine", "torch", "--device", "cpu", "--steps", "5", "--out", out,
                "--eval-every", "0", "--num-samples", "3", env=ONE_THREAD, check=True)
    with open(out / "checkpoint" / "model.safetensors", "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    assert header["wte"]["dtype"] == "F32"
    train_samples = [l.split(": ", 1)[1] for l in p.stdout.splitlines() if l.startswith("sample ")]
    for engine in ("python", "torch"):
        s = run_cli("sample", "--out", out, "--num", "3", "--engine", engine, env=ONE_THREAD, check=True)
        assert [l.split(": ", 1)[1].split("  (")[0] for l in s.stdout.splitlines()] == train_samples


# ---------------------------------------------------------------- compile, bf16, bad options

@pytest.mark.parametrize("backend", [
    "aot_eager",  # what microgpt controls: the model traced whole (one shape: batches padded), autograd through it
    pytest.param("inductor", marks=[  # + torch's own C++ code generation: ~30 s of gcc on a 2-core machine
        pytest.mark.slow, pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc") or shutil.which("g++")),
                                             reason="torch.compile on the CPU needs a C++ compiler")])])
def test_compiled_model_computes_the_same_steps(backend, monkeypatch):
    """--compile (float64, CPU): the same losses and weights as eager. The engine calls torch.compile(module);
    here it gets the backend under test (inductor, torch's default and what --compile runs, with -m slow)."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=backend))
    config = GPTConfig(vocab_size=7, n_layer=1, n_embd=8, n_head=2, block_size=6)
    weights = init_weights(config, random.Random(2))
    eager, compiled = Model(config, weights, options()), Model(config, weights, options(compile=True))
    from microgpt.config import TrainConfig
    tc = TrainConfig()
    for step, seqs in enumerate([[[6, 1, 2, 3, 6], [6, 4, 6]], [[6, 5, 6], [6, 1, 1, 2, 3, 4, 6]]]):
        assert abs(eager.train_step(seqs, 0.01, step + 1, tc) - compiled.train_step(seqs, 0.01, step + 1, tc)) <= 1e-12
    assert max_abs_diff(eager.get_weights(), compiled.get_weights()) <= 1e-12
    assert max(abs(a - b) for a, b in zip(eager.token_losses([[6, 2, 6]])[0],
                                           compiled.token_losses([[6, 2, 6]])[0])) <= 1e-12


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_autocast_on_cuda_is_close_to_float32():
    config = GPTConfig(vocab_size=7, n_layer=2, n_embd=32, n_head=4, block_size=8)
    weights = init_weights(config, random.Random(0))
    bf16 = Model(config, weights, options(dtype="bf16", device="cuda"))
    f32 = Model(config, weights, options(dtype="float32", device="cuda"))
    seqs = [[6, 1, 2, 3, 6], [6, 4, 6]]
    assert bf16.safetensors_dtype == "F32"
    assert abs(bf16.loss_and_grads(seqs)[0] - f32.loss_and_grads(seqs)[0]) < 2e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_float64_on_cuda_computes_the_cpus_steps():
    """The CUDA kernels against the CPU (the oracle), in float64: losses, gradients, three Adam steps."""
    from microgpt.config import TrainConfig
    config = GPTConfig(vocab_size=7, n_layer=2, n_embd=32, n_head=4, block_size=8)
    weights = init_weights(config, random.Random(3))
    cpu, gpu = Model(config, weights, options()), Model(config, weights, options(device="cuda"))
    seqs = [[6, 1, 2, 3, 6], [6, 4, 5, 1, 2, 6], [6, 2, 6]]
    (lc, gc), (lg, gg) = cpu.loss_and_grads(seqs), gpu.loss_and_grads(seqs)
    assert abs(lc - lg) <= 1e-10 and max_abs_diff(gc, gg) <= 1e-10
    for t in range(1, 4):
        assert abs(cpu.train_step(seqs, 0.01, t, TrainConfig()) - gpu.train_step(seqs, 0.01, t, TrainConfig())) <= 1e-10
    assert max_abs_diff(cpu.get_weights(), gpu.get_weights()) <= 1e-10


BAD = {
    "cuda-without-gpu": (["--device", "cuda"], {}, "--device cuda"),
    "bf16-on-cpu": (["--device", "cpu", "--dtype", "bf16"], {}, "needs --device cuda"),
    "unknown-device": (["--device", "tpu"], {}, "unknown --device"),
    "unknown-dtype": (["--device", "cpu", "--dtype", "int8"], {}, "unknown --dtype"),
    "batch-not-divisible": (["--device", "cpu", "--batch-size", "3"], {"WORLD_SIZE": "2", "RANK": "0"},
                            "cannot be split evenly across 2 processes"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_torch_options_are_one_line_errors(case, tmp_path, names_path):
    args, env, words = BAD[case]
    if case == "cuda-without-gpu" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    p = run_cli("train", "--engine", "torch", "--steps", "2", "--out", tmp_path / "r", *TINY, *args,
                env={**ONE_THREAD, **env})
    assert_one_line_error(p, words)
    assert not os.path.exists(tmp_path / "r")
