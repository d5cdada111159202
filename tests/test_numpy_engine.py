"""The numpy engine's tensor autograd: every op's gradient against finite differences, the KV
cache against a full recomputation, float32, and stream mode on continuous text."""

import ctypes
import os
import random
import subprocess
import sys

import pytest

np = pytest.importorskip("numpy")

from helpers import SHAKESPEARE, run_cli  # noqa: E402

from microgpt.config import EngineConfig, GPTConfig  # noqa: E402
from microgpt.engines.numpy_engine import tensor as T  # noqa: E402
from microgpt.engines.numpy_engine.engine import Model  # noqa: E402
from microgpt.engines.numpy_engine.model import gpt  # noqa: E402
from microgpt.params import init_weights  # noqa: E402


def grad_check(build, *arrays, seed=0, h=1e-6, tol=1e-7):
    """backward's gradient of f = sum(c * op(inputs)) against central differences, per element."""
    rng = np.random.default_rng(seed)
    leaves = [T.Tensor(a.copy()) for a in arrays]
    out = build(*leaves)
    coef = rng.standard_normal(out.shape)
    f = lambda: float((build(*[T.Tensor(a) for a in arrays]).data * coef).sum())
    out.grad = coef
    for v in reversed(out.topo_order()):
        if v._backward is not None and v.grad is not None:
            v._backward(v.grad)
    for a, leaf in zip(arrays, leaves):
        assert leaf.grad is not None and leaf.grad.shape == a.shape
        for i in np.ndindex(a.shape):
            x0 = a[i]
            a[i] = x0 + h
            up = f()
            a[i] = x0 - h
            down = f()
            a[i] = x0
            numeric = (up - down) / (2 * h)
            assert abs(leaf.grad[i] - numeric) <= tol * max(1.0, abs(numeric)), (i, leaf.grad[i], numeric)


rs = np.random.default_rng(1)


def test_add_with_broadcasting():
    grad_check(lambda a, b: a + b, rs.standard_normal((2, 3, 4)), rs.standard_normal((3, 4)))


def test_embedding_with_repeated_ids():
    ids = np.array([[0, 2, 2], [1, 0, 2]])
    grad_check(lambda t: T.embedding(t, ids), rs.standard_normal((4, 3)))


def test_linear():
    grad_check(T.linear, rs.standard_normal((2, 3, 5)), rs.standard_normal((4, 5)))


def test_rmsnorm():
    grad_check(T.rmsnorm, rs.standard_normal((2, 3, 6)))


def test_relu():
    x = rs.standard_normal((3, 7))
    x[np.abs(x) < 1e-3] = 0.5  # keep clear of the kink, where the derivative is undefined
    grad_check(T.relu, x)


@pytest.mark.parametrize("Tq,Tk", [(4, 4), (1, 3), (2, 5)])
def test_causal_attention(Tq, Tk):
    B, C, H = 2, 6, 3
    grad_check(lambda q, k, v: T.causal_attention(q, k, v, H),
               rs.standard_normal((B, Tq, C)), rs.standard_normal((B, Tk, C)), rs.standard_normal((B, Tk, C)))


def test_attention_is_causal():
    q, k, v = (T.Tensor(rs.standard_normal((1, 4, 4))) for _ in range(3))
    out = T.causal_attention(q, k, v, 2).data
    v.data[0, 3] += 10.0  # changing the last position's value cannot change earlier outputs
    out2 = T.causal_attention(q, k, v, 2).data
    np.testing.assert_array_equal(out[0, :3], out2[0, :3])
    assert not np.allclose(out[0, 3], out2[0, 3])


def test_cross_entropy_with_padding_and_weights():
    """Weights multiply each target token's loss; padding weighs 0 (mask / count = the mean)."""
    targets = np.array([[1, 0, 3], [2, 2, 0]])
    mean = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]) / 4
    signed = np.array([[0.5, -2.0, 0.0], [1.5, 0.0, 0.0]])
    for w in (mean, signed):
        grad_check(lambda l, w=w: T.cross_entropy(l, targets, w), rs.standard_normal((2, 3, 4)))
    logits = rs.standard_normal((2, 3, 4))
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    loss = T.cross_entropy(T.Tensor(logits), targets, mean).data
    assert loss == pytest.approx(-(logp[0, 0, 1] + logp[0, 1, 0] + logp[0, 2, 3] + logp[1, 0, 2]) / 4, abs=1e-14)
    loss = T.cross_entropy(T.Tensor(logits), targets, signed).data
    assert loss == pytest.approx(-(0.5 * logp[0, 0, 1] - 2 * logp[0, 1, 0] + 1.5 * logp[1, 0, 2]), abs=1e-14)


def _small_model(dtype="float64", **kw):
    config = GPTConfig(**{**dict(vocab_size=7, n_layer=2, n_embd=8, n_head=2, block_size=6), **kw})
    return Model(config, init_weights(config, random.Random(3), std=0.3), EngineConfig(name="numpy", dtype=dtype))


def test_kv_cache_equals_full_recomputation():
    m = _small_model()
    rows = [[6, 1, 4, 4, 2, 0], [6, 0, 0, 5, 3, 1]]
    gen = m.generator(batch_size=2)
    for pos in range(6):
        cached = gen.next_logits([r[pos] for r in rows], pos)
        full = gpt(m.params, m.config, np.array([r[:pos + 1] for r in rows])).data[:, -1]
        np.testing.assert_allclose(cached, full, rtol=0, atol=1e-13)


def test_padding_does_not_change_the_loss():
    m = _small_model()
    a, b = [6, 1, 2, 6], [6, 3, 4, 5, 1, 6]
    (la,), (lb,) = m.token_losses([a]), m.token_losses([b])
    pa, pb = m.token_losses([a, b])  # a is padded to b's length
    assert len(pa) == 3 and len(pb) == 5
    np.testing.assert_allclose(pa + pb, la + lb, rtol=0, atol=1e-12)


def test_float32_follows_float64():
    m64, m32 = _small_model(), _small_model("float32")
    assert m32.safetensors_dtype == "F32" and m32.get_weights()["wte"].dtype == np.float64
    seqs = [[6, 1, 2, 3, 6], [6, 4, 0, 6]]
    l64, g64 = m64.loss_and_grads(seqs)
    l32, g32 = m32.loss_and_grads(seqs)
    assert l32 == pytest.approx(l64, rel=1e-5)
    for name in g64:
        np.testing.assert_allclose(g32[name], g64[name], rtol=1e-3, atol=1e-5)


def test_unknown_dtype_is_a_clear_error(tmp_path, names_path):
    p = run_cli("train", "--engine", "numpy", "--dtype", "float16", "--out", tmp_path / "r", "--steps", "1")
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--dtype float32" in p.stderr


def test_stream_mode_on_shakespeare(tmp_path):
    if not os.path.exists(SHAKESPEARE):
        pytest.skip("tinyshakespeare.txt not found: set MICROGPT_DATA_DIR")
    out = tmp_path / "tiny"
    p = run_cli("train", "--engine", "numpy", "--dtype", "float32", "--data", SHAKESPEARE, "--data-mode", "stream",
                "--out", out, "--steps", "30", "--n-layer", "2", "--n-embd", "32", "--n-head", "4",
                "--block-size", "32", "--batch-size", "8", "--lr", "3e-3", "--eval-every", "30", "--eval-docs", "20",
                "--max-new-tokens", "80", "--num-samples", "1", check=True)
    assert "vocab size 66" in p.stdout  # 65 characters + BOS
    s = run_cli("sample", "--out", out, "--prompt", "ROMEO:", "--max-new-tokens", "50", "--num", "1", "--seed", "0",
                check=True)
    assert s.stdout.startswith("ROMEO:") and len(s.stdout.rstrip("\n")) == len("ROMEO:") + 50
    e = run_cli("eval", "--out", out, "--max-docs", "10", check=True)
    assert "val loss" in e.stdout


def test_dropout_is_reproducible_and_resumes_exactly(tmp_path, names_path):
    from microgpt import checkpoint
    common = ["--engine", "numpy", "--steps", "12", "--n-embd", "8", "--n-head", "2", "--batch-size", "4",
              "--eval-every", "0", "--num-samples", "0"]
    run_cli("train", "--out", tmp_path / "a", *common, "--dropout", "0.3", check=True)
    run_cli("train", "--out", tmp_path / "b", *common, "--dropout", "0.3", "--stop-after", "5", check=True)
    run_cli("train", "--out", tmp_path / "b", "--resume", "--num-samples", "0", check=True)
    assert checkpoint.load(str(tmp_path / "a")).weights == checkpoint.load(str(tmp_path / "b")).weights
    run_cli("train", "--out", tmp_path / "c", *common, check=True)
    assert checkpoint.load(str(tmp_path / "a")).weights != checkpoint.load(str(tmp_path / "c")).weights
    p = run_cli("train", "--out", tmp_path / "d", "--dropout", "0.1", "--steps", "2")
    assert p.returncode == 2 and "without dropout" in p.stderr and not (tmp_path / "d").exists()


MALLOC_PROBE = """
import ctypes, numpy as np
from microgpt.engines.numpy_engine.memory import keep_freed_memory
class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2: hblks = blocks mmapped from the kernel
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks "
                                                 "fordblks keepcost").split()]
mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
def mapped_by(n):  # blocks mmapped for a new array of n float32
    before = mallinfo2().hblks
    a = np.ones(n, dtype=np.float32)
    return mallinfo2().hblks - before, a
default, a = mapped_by(1 << 20)
took = keep_freed_memory()
raised, b = mapped_by(1 << 20)
print(default, took, raised)
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc >= 2.33 only")
def test_keep_freed_memory_serves_step_sized_arrays_from_the_heap():
    """A 4 MB array: mmapped from the kernel under glibc's defaults (faulted in again every step),
    from malloc's own heap once the numpy engine has raised the thresholds."""
    out = subprocess.run([sys.executable, "-c", MALLOC_PROBE], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "True", "0"]
