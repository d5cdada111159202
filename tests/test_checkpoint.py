"""Checkpoints: our plain-Python safetensors against the real library; atomic swap; data split."""

import json
import os
import random

import pytest

from microgpt import MicroGPTError, checkpoint, safetensors
from microgpt.checkpoint import rng_state_to_json
from microgpt.config import GPTConfig, TrainConfig
from microgpt.data.text import Dataset
from microgpt.params import init_weights
from microgpt.tokenizers import CharTokenizer

np = pytest.importorskip("numpy")
st_numpy = pytest.importorskip("safetensors.numpy")

CONFIG = GPTConfig(vocab_size=6, n_layer=2, n_embd=8, n_head=2, block_size=5)


def _lists(matrices):
    """{name: rows} with every row a plain list (a loaded checkpoint's rows are array.array slices)."""
    return {name: [list(row) for row in rows] for name, rows in matrices.items()}


def _save(run_dir, weights, dtype="F64", step=7):
    opt = {"m": weights, "v": {n: [[x * x for x in row] for row in rows] for n, rows in weights.items()}}
    checkpoint.save(str(run_dir), weights=weights, optimizer=opt, config=CONFIG, tokenizer=CharTokenizer("abcde"),
                    state={"step": step, "rng_state": rng_state_to_json(random.Random(0))},
                    meta={"train": TrainConfig().to_dict()}, dtype=dtype)


@pytest.mark.parametrize("dtype,np_dtype", [("F64", np.float64), ("F32", np.float32)])
def test_our_file_loads_in_the_real_safetensors_library(tmp_path, dtype, np_dtype):
    weights = init_weights(CONFIG, random.Random(3))
    _save(tmp_path, weights, dtype)
    loaded = st_numpy.load_file(str(tmp_path / "checkpoint" / "model.safetensors"))
    assert set(loaded) == set(weights)
    for name, rows in weights.items():
        assert loaded[name].dtype == np_dtype
        np.testing.assert_array_equal(loaded[name], np.array(rows, dtype=np_dtype))
    opt = st_numpy.load_file(str(tmp_path / "checkpoint" / "optimizer.safetensors"))
    assert set(opt) == {f"{k}.{n}" for k in "mv" for n in weights}


def test_real_library_file_loads_in_ours(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"a": rng.standard_normal((3, 4)), "b.c": rng.standard_normal((2, 5)).astype(np.float32)}
    path = tmp_path / "x.safetensors"
    st_numpy.save_file(tensors, str(path), metadata={"k": "v"})
    ours, meta = safetensors.loads(path.read_bytes())
    assert meta == {"k": "v"}
    for name, arr in tensors.items():
        shape, flat = ours[name]
        assert shape == list(arr.shape)
        np.testing.assert_array_equal(np.array(flat, dtype=arr.dtype).reshape(shape), arr)


def test_round_trip_is_exact(tmp_path):
    weights = init_weights(CONFIG, random.Random(4))
    _save(tmp_path, weights)
    ck = checkpoint.load(str(tmp_path))
    assert _lists(ck.weights) == weights and _lists(ck.optimizer["m"]) == weights
    assert ck.config == CONFIG and ck.state["step"] == 7 and ck.tokenizer.chars == list("abcde")


def test_a_second_save_replaces_the_first_whole(tmp_path):
    _save(tmp_path, init_weights(CONFIG, random.Random(4)), step=1)
    w2 = init_weights(CONFIG, random.Random(5))
    _save(tmp_path, w2, step=2)
    assert _lists(checkpoint.load(str(tmp_path)).weights) == w2
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]  # no temp or old folders left behind


def test_a_crash_mid_swap_falls_back_to_the_previous_checkpoint(tmp_path):
    w1 = init_weights(CONFIG, random.Random(4))
    _save(tmp_path, w1, step=1)
    os.rename(tmp_path / "checkpoint", tmp_path / ".checkpoint.old")  # died between the two renames
    assert _lists(checkpoint.load(str(tmp_path)).weights) == w1


def test_no_pickle_anywhere_in_a_checkpoint(tmp_path):
    _save(tmp_path, init_weights(CONFIG, random.Random(4)))
    for f in os.listdir(tmp_path / "checkpoint"):
        raw = (tmp_path / "checkpoint" / f).read_bytes()
        if f.endswith(".json"):
            json.loads(raw)
        else:
            assert raw[8:9] == b"{"  # a JSON header, not a pickle stream


def test_header_pointing_past_the_end_is_rejected():
    raw = safetensors.dumps({"a": ([2, 2], [1.0, 2.0, 3.0, 4.0])})
    with pytest.raises(MicroGPTError, match="corrupt or truncated"):
        safetensors.loads(raw[:-8])


def test_validation_split_comes_from_the_end_and_keeps_the_training_order():
    text = "\n".join(f"doc{i}" for i in range(100))
    full = Dataset(text, "docs", 16, 0.0, random.Random(42))
    split = Dataset(text, "docs", 16, 0.2, random.Random(42))
    assert split.train == full.train[:80] and split.val == full.train[80:]
    for step in range(10):
        assert split.train_batch(step, 1, 42) == full.train_batch(step, 1, 42)


def test_default_names_download_failure_says_what_to_do(monkeypatch, tmp_path):
    from microgpt.data import text as data
    monkeypatch.delenv("MICROGPT_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def offline(*a, **k):
        raise OSError("network is unreachable")
    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(MicroGPTError, match=r"--data FILE.*MICROGPT_DATA_DIR"):
        data.default_names_path()


def test_download_is_verified_and_cached(monkeypatch, tmp_path):
    from microgpt.data import text as data
    names = os.path.join(os.environ["MICROGPT_DATA_DIR"], "names.txt")
    monkeypatch.delenv("MICROGPT_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    class Resp:
        def __init__(self, raw): self.raw = raw
        def __enter__(self): return self
        def __exit__(self, *a): pass
        def read(self): return self.raw
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: Resp(b"tampered\n"))
    with pytest.raises(MicroGPTError, match="SHA-256"):
        data.default_names_path()
    assert not os.path.exists(tmp_path / "microgpt" / "names.txt")
    with open(names, "rb") as f:
        raw = f.read()
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: Resp(raw))
    path = data.default_names_path()
    assert path == str(tmp_path / "microgpt" / "names.txt")
    assert data.default_names_path() == path  # now found in the cache
