"""Every checkpoint file, any bytes: a property test over thousands of hostile checkpoints.

Each example starts from a valid tiny checkpoint (a char-tokenizer run trained a few steps with
the python engine, or a BPE one saved in F32) and damages one or more of its files: truncation,
random bytes, bit flips and byte edits, valid JSON with wrong types, missing or extra keys, deep
nesting, huge numbers, NaN and Infinity, tokenizers that do not fit the model, safetensors
headers with absurd shapes and offsets, non-finite weights and moments, files swapped between
checkpoints or deleted. Opening it as `microgpt sample` does (checkpoint.load, then the engine's
model, then sampling) must either work or raise a one-line MicroGPTError naming a checkpoint
file; anything else (a traceback) fails. A subset also measures allocation with tracemalloc.

MICROGPT_FUZZ_SCALE=10 runs ten times as many examples (the default is sized for CI).
"""

import contextlib
import json
import math
import os
import random
import shutil
import struct
import time
import tracemalloc

import pytest
from helpers import assert_one_line_error, run_cli

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from microgpt import MicroGPTError, checkpoint, safetensors  # noqa: E402
from microgpt.checkpoint import rng_state_to_json  # noqa: E402
from microgpt.config import GPTConfig, RunConfig, TrainConfig  # noqa: E402
from microgpt.errors import math_overflow  # noqa: E402
from microgpt.params import init_weights  # noqa: E402
from microgpt.stages.open import open_run  # noqa: E402
from microgpt.stages.pretrain import Run  # noqa: E402
from microgpt.tokenizers.bpe import BPETokenizer  # noqa: E402

FILES = ("model.safetensors", "optimizer.safetensors", "config.json", "state.json")
SCALE = float(os.environ.get("MICROGPT_FUZZ_SCALE", "1"))
WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail",
         "zoe", "quinn", "xavier", "jude", "kai", "yusuf", "wren"]
FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
STATS = {"examples": 0, "loaded": 0, "refused": 0, "differential": 0, "measured": 0, "started": None}


# ---------------------------------------------------------------- the valid checkpoints we start from

@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """{"char": {file: bytes}, "bpe": {file: bytes}}: two valid checkpoints, read back as bytes."""
    tmp = tmp_path_factory.mktemp("fuzz-bases")
    data = tmp / "words.txt"
    data.write_text("\n".join(WORDS * 3) + "\n")
    cfg = RunConfig(out=str(tmp / "char"), data=str(data), model=GPTConfig(n_embd=4, n_head=1, block_size=8),
                    train=TrainConfig(steps=6, batch_size=2), eval_every=0, stop_after=3, quiet=True)
    Run(cfg).train()
    raw_cfg = json.loads((tmp / "char" / "checkpoint" / "config.json").read_text())
    # a BPE checkpoint, in F32, saved directly (its tokenizer is what matters here, not its training)
    tok = BPETokenizer.train("\n".join(WORDS), 256 + 12 + 1)
    config = GPTConfig(vocab_size=tok.vocab_size, n_embd=4, n_head=1, block_size=8)
    rng = random.Random(5)
    weights, m = init_weights(config, rng), init_weights(config, rng, std=0.01)
    v = {n: [[x * x for x in row] for row in rows] for n, rows in init_weights(config, rng, std=0.01).items()}
    meta = {k: raw_cfg[k] for k in ("train", "engine", "run", "data", "command", "resumed")}
    checkpoint.save(str(tmp / "bpe"), weights=weights, optimizer={"m": m, "v": v}, config=config, tokenizer=tok,
                    state={"step": 3, "tokens": 40, "elapsed": 0.5, "rng_state": rng_state_to_json(rng)},
                    meta=meta, dtype="F32")
    out = Bases()
    for kind in ("char", "bpe"):
        out[kind] = {f: (tmp / kind / "checkpoint" / f).read_bytes() for f in FILES}
        assert checkpoint.load(str(tmp / kind)).step == 3  # both valid to start with
    return out


class Bases(dict):
    def __repr__(self):  # (hypothesis prints a failing example's arguments)
        return "<the two valid checkpoints>"


class Scratch:
    """A fresh run folder per example (cheap: four small files)."""

    def __init__(self, root):
        self.root, self.n = root, 0

    def write(self, files, folder="checkpoint"):
        self.n += 1
        run = self.root / f"r{self.n}"
        os.makedirs(run / folder)
        for name, raw in files.items():
            if raw is not None:
                (run / folder / name).write_bytes(raw)
        return run


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return Scratch(tmp_path_factory.mktemp("fuzz"))


# ---------------------------------------------------------------- the promise, checked on one checkpoint

def open_like_sample(run_dir):
    """What `microgpt sample` does with a checkpoint, plus the optimizer moments and a training
    step as `--resume` uses them. Returns True if it loaded, False if refused properly."""
    STATS["examples"] += 1
    STATS["started"] = STATS["started"] or time.perf_counter()
    try:
        ckpt = checkpoint.load(str(run_dir))
        assert_usable(ckpt)
        run = open_run(str(run_dir))
        run.sample(2)
        if ckpt.optimizer:
            run.model.set_optimizer_state(ckpt.optimizer)
        bos = ckpt.tokenizer.BOS
        try:
            run.model.check_training(ckpt.train)  # (an engine refusing a saved option, say dropout: one line)
        except MicroGPTError as e:
            assert "\n" not in str(e)
            STATS["loaded"] += 1
            return True
        try:
            run.model.train_step([[bos, 0, 1, bos]], 0.001, ckpt.step + 1, ckpt.train)
        except (OverflowError, ValueError) as e:
            assert math_overflow(e), e  # what Run.train reports as "loss became inf"
    except MicroGPTError as e:
        if "diverged" in str(e):  # finite weights that overflow when used: one line too
            assert "\n" not in str(e)
            STATS["loaded"] += 1
            return True
        check_message(str(e), run_dir)
        STATS["refused"] += 1
        return False
    STATS["loaded"] += 1
    return True


def assert_usable(ckpt):
    """What load() returns is what an engine can use: finite numbers, Adam's v >= 0, a state
    within the run, a tokenizer of the model's vocabulary."""
    for k, group in [("w", ckpt.weights), *(ckpt.optimizer or {}).items()]:
        for rows in group.values():
            for row in rows:
                assert all(math.isfinite(x) and abs(x) <= checkpoint.MAX_MAGNITUDE for x in row)
                assert k != "v" or min(row) >= 0
    assert 0 <= ckpt.step <= ckpt.train.steps
    assert ckpt.tokenizer.vocab_size == ckpt.config.vocab_size


def check_message(msg, run_dir):
    assert "\n" not in msg, msg
    assert any(os.path.join(str(run_dir), folder, f) in msg for folder in ("checkpoint", ".checkpoint.old")
               for f in FILES) or f"{run_dir}{os.sep}checkpoint" in msg, f"names no checkpoint file: {msg}"
    assert checkpoint.FIX in msg or "permissions" in msg, f"says nothing to do: {msg}"


# ---------------------------------------------------------------- mutations

HOSTILE = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.sampled_from([0, -1, 1, 2, 3, 625, 2 ** 31, 2 ** 32, 2 ** 63, 2 ** 64, 10 ** 30, 10 ** 300]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["F16", "I64", "F64", "F32", "float16", "float32", "bf16", "cuda", "cuda:x", "tpu", "bpe",
                     "char", "<|bos|>", "", "\x00", "\ud800", "textbook", "numpy", "torch", "docs", "stream"]),
    st.lists(st.integers(min_value=-5, max_value=300), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(-3, 3), max_size=2),
)
# text that JSON-serialising a Python value cannot produce: put in place of a value
RAW = ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000, "[" * 3000, "1e999", "-1e999",
       "9" * 5000, "-" + "9" * 4000, "NaN", "Infinity", "-Infinity", "1.0", "-0", "[]", "{}", '""', '"\\ud800"',
       "[[" + ",".join(["[]"] * 2000) + "]]"]


def json_paths(obj, prefix=()):
    """Paths to the values of a JSON document (long lists: their first and last few entries)."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from json_paths(v, (*prefix, k))
    elif isinstance(obj, list):
        idx = range(len(obj)) if len(obj) <= 6 else [0, 1, 2, len(obj) - 2, len(obj) - 1]
        for i in idx:
            yield from json_paths(obj[i], (*prefix, i))


def get_parent(doc, path):
    for key in path[:-1]:
        doc = doc[key]
    return doc


def mutate_json(data, raw):
    doc = json.loads(raw)
    paths = list(json_paths(doc))
    path = data.draw(st.sampled_from(paths), label="path")
    op = data.draw(st.sampled_from(["replace", "replace", "raw", "delete", "add key", "wrap"]), label="op")
    marker = "\x00RAW\x00"
    if not path:
        doc = data.draw(HOSTILE) if op != "raw" else marker
    else:
        parent, key = get_parent(doc, path), path[-1]
        if op == "replace":
            parent[key] = data.draw(HOSTILE, label="value")
        elif op == "raw":
            parent[key] = marker
        elif op == "delete":
            del parent[key]
        elif op == "add key" and isinstance(parent[key], dict):
            parent[key][data.draw(st.sampled_from(["extra", "format", "model", "type", "step", "__metadata__"]))] = \
                data.draw(HOSTILE)
        else:
            parent[key] = [parent[key]]
    text = json.dumps(doc, allow_nan=True)
    if op == "raw":
        text = text.replace(json.dumps(marker), data.draw(st.sampled_from(RAW), label="raw"))
    if data.draw(st.booleans(), label="duplicate a key") and text.startswith("{") and len(text) > 2:
        text = '{"format": "microgpt-checkpoint-1", ' + text[1:]
    return text.encode("utf-8", "surrogatepass")


def split_safetensors(raw):
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join_safetensors(header_text, data_bytes, length=None):
    head = header_text.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(head) if length is None else length) + head + data_bytes


def mutate_header(data, raw):
    header, body = split_safetensors(raw)
    names = [k for k in header if k != "__metadata__"]
    kind = data.draw(st.sampled_from(["entry", "entry", "absurd", "overlap", "duplicate", "metadata", "length",
                                      "json"]), label="header op")
    length = None
    if kind == "entry":
        entry = header[data.draw(st.sampled_from(names))]
        field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        entry[field] = data.draw(HOSTILE)
    elif kind == "absurd":
        entry = header[data.draw(st.sampled_from(names))]
        entry.update(data.draw(st.sampled_from([
            {"shape": [10 ** 12, 10 ** 12]}, {"shape": [2 ** 64]}, {"shape": [-1, -4]}, {"shape": [0, 4]},
            {"shape": [1] * 5000}, {"shape": [2 ** 62] * 2 + [0]}, {"data_offsets": [0, 2 ** 64]},
            {"data_offsets": [2 ** 63, 2 ** 63]}, {"data_offsets": [8, 0]}, {"shape": []}, {"dtype": "F16"}])))
    elif kind == "overlap" and len(names) > 1:
        a, b = data.draw(st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True))
        header[a]["data_offsets"] = list(header[b]["data_offsets"])
    elif kind == "duplicate":
        first = names[0]
        text = json.dumps(header)
        text = "{" + json.dumps(first) + ": " + json.dumps(header[first]) + ", " + text[1:]
        return join_safetensors(text, body)
    elif kind == "metadata":
        header["__metadata__"] = data.draw(st.one_of(HOSTILE, st.just({"a": 1}), st.just({"a": ["b"]})))
    elif kind == "length":
        length = data.draw(st.sampled_from([0, 1, 7, 2 ** 63, 2 ** 64 - 1, 100_000_001]) | st.integers(0, 5000))
    else:
        return join_safetensors(mutate_json(data, json.dumps(header)).decode("utf-8", "surrogatepass"), body)
    return join_safetensors(json.dumps(header, allow_nan=True), body, length)


def mutate_values(data, raw, is_optimizer):
    header, body = split_safetensors(raw)
    n = len(raw) - len(body)
    names = [k for k in header if k != "__metadata__"]
    name = data.draw(st.sampled_from(names))
    info = header[name]
    code, size = {"F64": ("<d", 8), "F32": ("<f", 4)}[info["dtype"]]
    begin, end = info["data_offsets"]
    i = data.draw(st.integers(0, (end - begin) // size - 1))
    values = [float("nan"), float("inf"), float("-inf"), 1e300, -1e300, 3e38, 5e-324, -0.0]
    if is_optimizer:
        values += [-1.0, -1e-30]
    value = data.draw(st.sampled_from(values))
    out = bytearray(raw)
    try:
        out[n + begin + i * size:n + begin + (i + 1) * size] = struct.pack(code, value)
    except OverflowError:  # 1e300 as F32
        out[n + begin + i * size:n + begin + (i + 1) * size] = struct.pack(code, float("inf"))
    return bytes(out)


def bad_tokenizer(data, base_cfg, other_cfg):
    cfg = json.loads(base_cfg)
    tok = cfg["tokenizer"]
    choice = data.draw(st.sampled_from(["other", "drop char", "add char", "dup char", "chars list", "special",
                                        "bpe merges", "bpe nested", "bpe pattern", "bpe special"]))
    if choice == "other":
        cfg["tokenizer"] = json.loads(other_cfg)["tokenizer"]
    elif tok["type"] == "char" and choice.endswith("char"):
        chars = tok["chars"]
        tok["chars"] = {"drop char": chars[1:], "add char": chars + "#", "dup char": chars + chars[0]}[choice]
    elif tok["type"] == "char" and choice == "chars list":
        tok["chars"] = list(tok["chars"]) + ["ab"]
    elif choice == "special":
        bos = tok["special_tokens"]["<|bos|>"]
        tok["special_tokens"] = data.draw(st.sampled_from([
            {}, {"<|bos|>": -1}, {"<|bos|>": bos + 1}, {"<|bos|>": True}, {"<|bos|>": float(bos)},
            {"<|bos|>": bos, "x": bos}, {"x": bos}, {"<|bos|>": 10 ** 30}, [bos]]))
    elif tok["type"] == "bpe" and choice == "bpe merges":
        merges = tok["merges"]
        k = data.draw(st.integers(0, len(merges) - 1))
        merges[k] = data.draw(st.sampled_from([[256 + k, 0], [0], [0, 1, 2], [-1, 5], ["a", "b"], [True, 0],
                                               merges[0], None, [2 ** 70, 0]]))
    elif tok["type"] == "bpe" and choice == "bpe nested":
        tok["merges"] = [[97, 97]] + [[256 + i, 256 + i] for i in range(data.draw(st.integers(30, 60)))]
        tok["special_tokens"] = {"<|bos|>": 256 + len(tok["merges"])}
    elif tok["type"] == "bpe" and choice == "bpe pattern":
        tok["pattern"] = data.draw(st.sampled_from(["(", ".", "", None, 5]))
    elif tok["type"] == "bpe":
        tok["special_tokens"] = {"<|bos|>": 5}
    else:
        cfg["tokenizer"] = {"type": data.draw(st.sampled_from(["bpe", "sentencepiece", None]))}
    return json.dumps(cfg).encode()


# each value the loader checks, with values just inside and just outside what it allows
RNG = json.loads(json.dumps(rng_state_to_json(random.Random(1))))
FIELDS = {
    "state.json": {
        ("step",): [-1, 0, 6, 7, 10 ** 6, 2 ** 63, True, 3.0, "3", None],
        ("tokens",): [-1, 0, 1.5, "x", None, 2 ** 70],
        ("elapsed",): [-1, 0, 1e308, "x", None, True],
        ("last_loss",): [None, -2.5, "x", [1]],
        ("rng_state",): [None, [], [3], [2, RNG[1], None], [3, RNG[1], "x"], [3, RNG[1], 0.5], [3, RNG[1][:624], None],
                         [3, RNG[1][:624] + [625], None], [3, RNG[1][:624] + [624], None],
                         [3, [2 ** 32] + RNG[1][1:], None], [3, [-1] + RNG[1][1:], None],
                         [3, [True] + RNG[1][1:], None], [3, [0] * 625, None], [3, RNG[1], None, 1]],
    },
    "config.json": {
        **{("model", k): [0, -1, 1, 2, 5, 2 ** 40 + 1, 10 ** 9, 1.5, True, "4", None]
           for k in ("vocab_size", "n_layer", "n_embd", "n_head", "block_size")},
        ("train", "steps"): [0, 1, 2, 3, -1, 10 ** 30, 2.0],
        ("train", "lr"): [0, -0.1, 1e308, "x"], ("train", "beta2"): [1, 1.0, -0.5], ("train", "eps"): [0, 1e-300],
        ("train", "lr_schedule"): ["cosine", "x", 1], ("train", "data_mode"): ["stream", "x"],
        ("train", "batch_size"): [0, 10 ** 9], ("train", "dropout"): [0.5, 1.0],
        ("engine",): ["numpy", "tpu", None, 5, [], {"name": "torch", "device": "gpu"},
                      {"name": "python", "dtype": "bf16"}], ("engine", "name"): ["numpy", "tpu", None],
        ("engine", "dtype"): ["float32", "bf16", "int8", None], ("engine", "graph"): ["textbook", "x"],
        ("engine", "device"): ["cpu", "cuda:x", "gpu", ""], ("engine", "compile"): [True, "yes"],
        ("format",): [None, "microgpt-checkpoint-2", 1], ("data",): [None, [], {"path": 5}, {"default": "yes"}],
        ("command",): [None, "microgpt train", 5, [1]], ("resumed",): [None, [], [["a"]], "x", [1], [["a"], 5]],
        ("run",): [None, [], {"eval_every": -1}, {"log_every": 0}],
        ("tokenizer",): [None, {}, {"type": "char"}, {"type": "char", "chars": 5}],
        ("model",): [None, [], {}],
    },
}


def bad_field(data, raw, name):
    path = data.draw(st.sampled_from(sorted(FIELDS[name], key=str)), label="field")
    return with_field(raw, path, data.draw(st.sampled_from(FIELDS[name][path]), label="value"))


def with_field(raw, path, value):
    doc = json.loads(raw)
    parent = doc
    for key in path[:-1]:
        parent = parent[key] if isinstance(parent.get(key), dict) else parent.setdefault(key, {})
    parent[path[-1]] = value
    return json.dumps(doc).encode()


def mutate(data, bases):
    """A damaged copy of one of the base checkpoints: ({file: bytes or None}, folder name)."""
    kind = data.draw(st.sampled_from(["char", "bpe"]), label="base")
    files = dict(bases[kind])
    other = bases["bpe" if kind == "char" else "char"]
    for _ in range(data.draw(st.integers(1, 2), label="files damaged")):
        name = data.draw(st.sampled_from(FILES), label="file")
        raw = files[name] or bases[kind][name]
        clean = bases[kind][name]  # (structural edits start from the valid file)
        ops = ["truncate", "random", "flip", "edit", "delete", "swap"]
        if name.endswith(".json"):
            ops += ["json"] * 6 + ["field"] * 4 + (["tokenizer"] * 3 if name == "config.json" else [])
        else:
            ops += ["header"] * 5 + ["values"] * 3
        op = data.draw(st.sampled_from(ops), label="op")
        if op == "truncate":
            raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
        elif op == "random":
            raw = data.draw(st.binary(max_size=300))
        elif op == "flip":
            out = bytearray(raw)
            for i in data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=8)):
                out[i // 8] ^= 1 << (i % 8)
            raw = bytes(out)
        elif op == "edit":
            out = bytearray(raw)
            for _ in range(data.draw(st.integers(1, 4))):
                i = data.draw(st.integers(0, len(out)))
                what = data.draw(st.sampled_from(["set", "insert", "delete"]))
                byte = data.draw(st.integers(0, 255))
                if what == "set" and i < len(out):
                    out[i] = byte
                elif what == "insert":
                    out[i:i] = bytes([byte])
                elif i < len(out):
                    del out[i]
            raw = bytes(out)
        elif op == "delete":
            raw = None
        elif op == "swap":
            raw = other[name]
        elif op == "json":
            raw = mutate_json(data, clean)
        elif op == "field":
            raw = bad_field(data, clean, name)
        elif op == "tokenizer":
            raw = bad_tokenizer(data, clean, other["config.json"])
        elif op == "header":
            raw = mutate_header(data, clean)
        else:
            raw = mutate_values(data, clean, name == "optimizer.safetensors")
        files[name] = raw
    folder = data.draw(st.sampled_from(["checkpoint"] * 5 + [".checkpoint.old"]), label="folder")
    return files, folder


# ---------------------------------------------------------------- the property tests

def n_examples(n):
    return max(1, int(n * SCALE))


@settings(FUZZ, max_examples=n_examples(1200))
@given(data=st.data())
def test_any_damaged_checkpoint_loads_or_is_one_clear_error(bases, scratch, data):
    open_written(scratch, *mutate(data, bases))


def open_written(scratch, files, folder="checkpoint"):
    """Write the files as a run's checkpoint, open it as `microgpt sample` would, clean up."""
    run_dir = scratch.write(files, folder)
    try:
        open_like_sample(run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@settings(FUZZ, max_examples=n_examples(600))
@given(data=st.data())
def test_random_bytes_in_every_file(bases, scratch, data):
    """No base at all: each file is random bytes, or a valid file's prefix with random bytes after it."""
    kind = data.draw(st.sampled_from(["char", "bpe"]))
    files = {}
    for name in FILES:
        prefix = bases[kind][name][:data.draw(st.integers(0, len(bases[kind][name])))]
        files[name] = prefix + data.draw(st.binary(max_size=64)) if data.draw(st.booleans()) else bases[kind][name]
    open_written(scratch, files)


@settings(FUZZ, max_examples=n_examples(1000))
@given(data=st.data())
def test_our_safetensors_reader_agrees_with_the_library(bases, data):
    """Differential: a damaged safetensors file is read by our plain-Python reader exactly when
    the safetensors library reads it, and to the same tensors (files of the dtypes we read)."""
    STATS["differential"] += 1
    st_numpy = pytest.importorskip("safetensors.numpy")
    np = pytest.importorskip("numpy")
    kind = data.draw(st.sampled_from(["char", "bpe"]))
    name = data.draw(st.sampled_from(["model.safetensors", "optimizer.safetensors"]))
    clean = bases[kind][name]
    op = data.draw(st.sampled_from(["header", "header", "header", "truncate", "flip"]))
    if op == "header":
        raw = mutate_header(data, clean)
    elif op == "truncate":
        raw = clean[:data.draw(st.integers(0, len(clean) - 1))]
    else:
        out = bytearray(clean)
        i = data.draw(st.integers(0, min(len(clean), 600) * 8 - 1))  # (the header is where it matters)
        out[i // 8] ^= 1 << (i % 8)
        raw = bytes(out)
    try:
        theirs = st_numpy.load(raw)
    except Exception:  # (the library raises its own kinds of error)
        theirs = None
    try:
        ours = safetensors.loads(raw)[0]
    except MicroGPTError as e:
        if "appears twice" in str(e):
            return  # a name given twice: the library keeps one of them silently, we refuse on purpose
        ours = None
    if theirs is not None and any(a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8) for a in theirs.values()):
        return  # a dtype we do not read (F16, I64, ...): refusing it is right for us
    assert (ours is None) == (theirs is None), (ours is None, "library read it" if theirs is not None else "")
    if ours is not None:
        assert set(ours) == set(theirs)
        for k, (shape, flat) in ours.items():
            assert list(theirs[k].shape) == shape
            np.testing.assert_array_equal(np.asarray(flat, dtype=theirs[k].dtype), theirs[k].ravel())


def test_every_checked_field_at_and_past_its_limits(bases, scratch):
    """Not left to chance: every (field, value) of FIELDS, in both base checkpoints."""
    for kind in ("char", "bpe"):
        for name, fields in FIELDS.items():
            for path, values in fields.items():
                for value in values:
                    run_dir = scratch.write({**bases[kind], name: with_field(bases[kind][name], path, value)})
                    try:
                        open_like_sample(run_dir)
                    finally:
                        shutil.rmtree(run_dir, ignore_errors=True)


def _peak_while_loading(run_dir):
    tracemalloc.start()
    try:
        with contextlib.suppress(MicroGPTError):
            checkpoint.load(str(run_dir))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _total_size(run_dir, folder="checkpoint"):
    d = os.path.join(str(run_dir), folder)
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


# peak memory while loading <= SMALL_MULTIPLE x the files' bytes + CONSTANT (a whole valid
# checkpoint, measured: ~4x its size: the JSON of the random stream's state and the weights' rows)
SMALL_MULTIPLE, CONSTANT = 8, 256 * 1024


@settings(FUZZ, max_examples=n_examples(300))
@given(data=st.data())
def test_loading_allocates_no_more_than_the_files_hold(bases, scratch, data):
    STATS["measured"] += 1
    files, folder = mutate(data, bases)
    run_dir = scratch.write(files, folder)
    try:
        peak = _peak_while_loading(run_dir)
        assert peak <= SMALL_MULTIPLE * _total_size(run_dir, folder) + CONSTANT
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_report_fuzz_figures(capsys):
    """(Prints how many cases the property tests above generated, and how long they took: pytest -s.)"""
    if STATS["started"] is None:
        return
    total = STATS["examples"] + STATS["differential"] + STATS["measured"]
    with capsys.disabled():
        print(f"\n[fuzz] {total} generated cases in {time.perf_counter() - STATS['started']:.1f} s: "
              f"{STATS['examples']} damaged checkpoints opened ({STATS['loaded']} loaded: harmless damage; "
              f"{STATS['refused']} refused in one line), {STATS['differential']} safetensors files read by us "
              f"and the library alike, {STATS['measured']} loads measured with tracemalloc")


# ---------------------------------------------------------------- absurd sizes: refused before allocating

def _with_config(bases, change):
    cfg = json.loads(bases["char"]["config.json"])
    change(cfg)
    return {**bases["char"], "config.json": json.dumps(cfg).encode()}


ABSURD = {
    "n_layer 10^9": lambda c: c["model"].update(n_layer=10 ** 9),
    "n_embd 10^6": lambda c: c["model"].update(n_embd=10 ** 6, n_head=1),
    "vocab 2^40": lambda c: c["model"].update(vocab_size=2 ** 40),
    "n_layer 2^41": lambda c: c["model"].update(n_layer=2 ** 41),
    "block 10^12": lambda c: c["model"].update(block_size=10 ** 12),
    "bpe 2^25 bytes": lambda c: c.update(tokenizer={  # (under the tokenizer's own cap of 64 MB)
        "type": "bpe", "pattern": BPETokenizer([]).pattern,
        "merges": [[97, 97]] + [[256 + i, 256 + i] for i in range(23)], "special_tokens": {"<|bos|>": 280}}),
    "bpe 2^50 bytes": lambda c: c.update(tokenizer={
        "type": "bpe", "pattern": BPETokenizer([]).pattern,
        "merges": [[97, 97]] + [[256 + i, 256 + i] for i in range(50)], "special_tokens": {"<|bos|>": 307}}),
}


@pytest.mark.parametrize("case", list(ABSURD))
def test_absurd_sizes_are_refused_before_anything_is_allocated(bases, tmp_path, case):
    run_dir = Scratch(tmp_path).write(_with_config(bases, ABSURD[case]))
    with pytest.raises(MicroGPTError) as e:
        checkpoint.load(str(run_dir))
    check_message(str(e.value), run_dir)
    assert _peak_while_loading(run_dir) < 1024 * 1024


@pytest.mark.parametrize("name,size", [("config.json", 300 << 20), ("state.json", 2 << 20),
                                       ("model.safetensors", 1 << 40), ("optimizer.safetensors", 1 << 40)])
def test_huge_files_are_refused_without_being_read(bases, tmp_path, name, size):
    """(Sparse files: huge to stat, nothing on disk.)"""
    run_dir = Scratch(tmp_path).write(bases["char"])
    with open(run_dir / "checkpoint" / name, "r+b") as f:
        f.truncate(size)
    with pytest.raises(MicroGPTError, match=name) as e:
        checkpoint.load(str(run_dir))
    check_message(str(e.value), run_dir)
    assert _peak_while_loading(run_dir) < 1024 * 1024


def test_deep_nesting_in_every_json_is_an_error_not_a_crash(bases, tmp_path):
    deep = b"[" * 200_000 + b"]" * 200_000
    for name in ("config.json", "state.json"):
        run_dir = Scratch(tmp_path / name).write({**bases["char"], name: deep})
        with pytest.raises(MicroGPTError, match="nested too deeply"):
            checkpoint.load(str(run_dir))
    header = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    run_dir = Scratch(tmp_path / "st").write({**bases["char"], "model.safetensors": join_safetensors(
        header.decode(), b"")})
    with pytest.raises(MicroGPTError, match="model.safetensors"):
        checkpoint.load(str(run_dir))


def test_a_character_that_is_not_text_is_refused(bases, tmp_path):
    """A lone surrogate ("\\ud800") is JSON but not Unicode: as a tokenizer's character it would
    crash the first decode, or the report page."""
    cfg = json.loads(bases["char"]["config.json"])
    cfg["tokenizer"]["chars"] = "\ud800" + cfg["tokenizer"]["chars"][1:]
    run_dir = Scratch(tmp_path).write({**bases["char"], "config.json": json.dumps(cfg).encode()})
    with pytest.raises(MicroGPTError, match="surrogate") as e:
        checkpoint.load(str(run_dir))
    check_message(str(e.value), run_dir)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_or_a_folder_in_place_of_a_file(bases, tmp_path):
    for name in ("config.json", "model.safetensors"):
        run_dir = Scratch(tmp_path / name.split(".")[0]).write({**bases["char"], name: None})
        os.mkfifo(run_dir / "checkpoint" / name)  # opening it must not wait for a writer
        with pytest.raises(MicroGPTError, match="not a regular file"):
            checkpoint.load(str(run_dir))
        os.unlink(run_dir / "checkpoint" / name)
        os.mkdir(run_dir / "checkpoint" / name)
        with pytest.raises(MicroGPTError, match=name):
            checkpoint.load(str(run_dir))


# ---------------------------------------------------------------- through the real CLI

def _cli_cases(bases):
    """(file, bytes) pairs: a few hostile versions of each file."""
    char = bases["char"]
    cfg, state = json.loads(char["config.json"]), json.loads(char["state.json"])
    header, body = split_safetensors(char["model.safetensors"])
    absurd = dict(header)
    absurd["wte"] = {**header["wte"], "shape": [10 ** 12, 10 ** 12]}
    nan = mutate_values_at(char["optimizer.safetensors"], "m.wte", float("nan"))
    return [
        ("model.safetensors", char["model.safetensors"][:50]),
        ("model.safetensors", join_safetensors(json.dumps(absurd), body)),
        ("model.safetensors", mutate_values_at(char["model.safetensors"], "lm_head", float("inf"))),
        ("optimizer.safetensors", nan),
        ("optimizer.safetensors", os.urandom(200)),
        ("config.json", b"[" * 100_000),
        ("config.json", json.dumps({**cfg, "model": {**cfg["model"], "n_head": "4"}}).encode()),
        ("config.json", json.dumps({**cfg, "tokenizer": {**cfg["tokenizer"], "chars": cfg["tokenizer"]["chars"][1:]}})
         .encode()),
        ("state.json", json.dumps({**state, "step": -3}).encode()),
        ("state.json", json.dumps({**state, "rng_state": [3, [1] * 10, None]}).encode()),
        ("state.json", b"\xff\xfe garbage"),
    ]


def mutate_values_at(raw, name, value):
    header, body = split_safetensors(raw)
    begin = header[name]["data_offsets"][0]
    out = bytearray(raw)
    at = len(raw) - len(body) + begin
    out[at:at + 8] = struct.pack("<d", value)
    return bytes(out)


def test_hostile_checkpoints_through_the_cli_are_one_line_each(bases, tmp_path):
    for k, (name, raw) in enumerate(_cli_cases(bases)):
        run_dir = Scratch(tmp_path / str(k)).write({**bases["char"], name: raw})
        command = ["sample", "--out", run_dir] if k % 2 else ["train", "--out", run_dir, "--resume"]
        p = run_cli(*command)
        assert p.returncode == 2, p.stderr
        assert_one_line_error(p, os.path.join(str(run_dir), "checkpoint", name))


def test_nan_next_token_probabilities_are_one_line():
    from microgpt.generate import pick
    with pytest.raises(MicroGPTError, match="diverged"):
        pick([float("nan"), 1.0, 2.0], random.Random(0), 0.5)
    assert pick([float("nan"), 1.0, 2.0], random.Random(0), 0) in (0, 1, 2)  # greedy: any, no crash


def test_weights_that_overflow_when_used_are_one_line_too(bases, tmp_path):
    """Finite weights a million times too large (a run that diverged, or a damaged file that
    stays finite): the python engine's float math overflows where arrays give inf. Resuming
    stops with "loss became inf", evaluating reports an infinite loss, sampling says the
    weights have diverged: never a traceback."""
    tensors, meta = safetensors.loads(bases["char"]["model.safetensors"])
    big = safetensors.dumps({k: (shape, [x * 1e6 for x in flat]) for k, (shape, flat) in tensors.items()},
                            metadata=meta)
    run_dir = Scratch(tmp_path).write({**bases["char"], "model.safetensors": big})
    assert_one_line_error(run_cli("train", "--out", run_dir, "--resume"), "loss became inf")
    p = run_cli("eval", "--out", run_dir)
    assert p.returncode == 0 and "loss inf" in p.stdout, p.stderr
    p = run_cli("sample", "--out", run_dir)
    assert p.returncode == 0 or (p.returncode == 2 and "diverged" in p.stderr), p.stderr
    assert "Traceback" not in p.stderr
