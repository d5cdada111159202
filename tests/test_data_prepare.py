"""`microgpt data prepare` and training from its shards (issue: corpora of any size): the shards decode
back to the sources exactly; 1 worker = 2 workers = tiktoken = pure Python, byte for byte; a corpus of a
file's lines trains exactly as the file; resume exact; a stopped prepare resumes to the same shards;
damaged shards and every bad input refused in one line. The big corpus belongs to bench/bench_data.py."""

import filecmp
import json
import os
import random
import re
import sys
from array import array

import pytest
from helpers import WORDS, run_cli

from microgpt.config import GPTConfig, RunConfig, TrainConfig
from microgpt.data import encode, pool
from microgpt.data.prepare import PrepareOptions, prepare
from microgpt.data.sharded import DocOrder, PreparedCorpus, ShardedDataset, feistel
from microgpt.data.shards import doc_hash
from microgpt.errors import MicroGPTError
from microgpt.stages.pretrain import Run
from microgpt.tokenizers.base import BOS
from microgpt.tokenizers.bpe import BPETokenizer

LETTERS = "abcdefghijklmnopqrstuvwxyz"
UNICODE = ["café au lait", "naïve Ünïcödé", "日本語のテキスト", "emoji 🎉🚀 ok", "שלום עולם", "x"]


def make_lines(path, n=600, seed=0):
    rng = random.Random(seed)
    docs = [("".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 9)))) for _ in range(n)] + UNICODE
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return docs


def make_prose(path, n_chars=40_000, seed=0):
    rng = random.Random(seed)
    words = ["the", "king", "said", "and", "to", "my", "lord", "of", "thee", "what", "is", "love", "?", ","]
    lines, size = [], 0
    while size < n_chars:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))).capitalize()
        lines.append(line + ("." if rng.random() < 0.7 else ""))
        size += len(lines[-1]) + 1
        if rng.random() < 0.2:
            lines.append("")
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return text


def prep(sources, out, workers=1, **kw):
    kw.setdefault("item_bytes", 2000)  # many work items even for small files
    return prepare(PrepareOptions(tuple(map(str, sources)), str(out), **kw), workers=workers, log=lambda m: None)


def all_docs(corpus, split):
    sp = corpus.split(split)
    return [corpus.tokenizer.decode(sp.document(i)) for i in range(sp.n_docs)]


@pytest.mark.parametrize("shard_tokens", [2 ** 27, 50])  # (50: documents run on from one shard into the next)
def test_shards_decode_back_to_the_documents_each_in_the_split_its_hash_says(tmp_path, shard_tokens):
    docs = make_lines(tmp_path / "a.txt")
    m = prep([tmp_path / "a.txt"], tmp_path / "c", val_frac=0.2, shard_tokens=shard_tokens)
    corpus = PreparedCorpus(str(tmp_path / "c"))
    train, val = all_docs(corpus, "train"), all_docs(corpus, "val")
    threshold = int(0.2 * 2 ** 64)
    assert train == [d for d in docs if doc_hash(d) >= threshold]  # in source order
    assert val == [d for d in docs if doc_hash(d) < threshold] and 0.1 < len(val) / len(docs) < 0.3
    sp = corpus.split("train")
    assert all(sp.document(i)[-1] == corpus.tokenizer.BOS for i in range(sp.n_docs))
    examples = ShardedDataset(corpus, "docs", 16, random.Random(0)).val_examples(5, 8)  # (as text.Dataset's: no BOS)
    assert examples == [corpus.tokenizer.encode(d) for d in val[:5]]
    assert len(m["shards"]) > 2 and m["totals"]["train"]["documents"] == len(train)
    assert all(s["tokens"] <= shard_tokens for s in m["shards"])
    assert m["sources"][0]["documents"] == len(docs) and len(m["sources"][0]["sha256"]) == 64
    assert sorted(os.listdir(tmp_path / "c"))[0] == ".lock" and not (tmp_path / "c" / ".prepare").exists()


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_one_worker_equals_two_workers_byte_for_byte(tmp_path, tokenizer):
    make_prose(tmp_path / "p.txt")
    make_lines(tmp_path / "l.txt")
    kw = dict(tokenizer=tokenizer, vocab_size=300 if tokenizer == "bpe" else None, encoder="python")
    a = prep([tmp_path / "p.txt", tmp_path / "l.txt"], tmp_path / "one", workers=1, **kw)
    b = prep([tmp_path / "p.txt", tmp_path / "l.txt"], tmp_path / "two", workers=2, **kw)
    assert a == b
    assert not filecmp.cmpfiles(tmp_path / "one", tmp_path / "two", [s["file"] for s in a["shards"]])[1]


def test_tiktoken_writes_the_same_shards_as_pure_python(tmp_path):
    pytest.importorskip("tiktoken", reason="tiktoken is not installed")
    special = "a special token's text is text: <|bos|> and <|user_start|>"
    (tmp_path / "u.txt").write_text(make_prose(tmp_path / "p.txt") + "\n".join(UNICODE * 3 + [special]),
                                    encoding="utf-8")
    kw = dict(tokenizer="bpe", vocab_size=400, text_mode="stream")
    py = prep([tmp_path / "u.txt"], tmp_path / "py", encoder="python", **kw)
    tt = prep([tmp_path / "u.txt"], tmp_path / "tt", encoder="tiktoken", **kw)
    assert py == tt and len(py["shards"]) > 3


@pytest.mark.parametrize("which", ["python", "tiktoken"])
def test_an_encoder_gives_encode_ordinarys_ids_in_an_array(tmp_path, which):
    if which == "tiktoken":
        pytest.importorskip("tiktoken", reason="tiktoken is not installed")
    tok = BPETokenizer.train(make_prose(tmp_path / "p.txt"), 300, special_tokens=(BOS, "<|user_start|>"))
    text = "Thee king <|bos|>said<|user_start|> naïve 日本語 🎉"
    ids = encode.make_encoder(tok, which)(text)
    assert isinstance(ids, array) and ids.typecode == "I"
    assert ids.tolist() == tok.encode_ordinary(text) and not set(ids) & set(tok.special_tokens.values())
    if which == "tiktoken":  # (with none, tiktoken's encode_to_numpy searches an empty pattern at every character)
        assert encode.tiktoken_encoding(tok).special_tokens_set == set(tok.special_tokens)


def test_ids_narrowed_to_uint16_the_same_with_and_without_numpy(monkeypatch):
    from microgpt.data.shards import ids_bytes
    ids = array("I", [0, 1, 255, 256, 4095, 65535, 300, 7])
    want = b"".join(i.to_bytes(2, "little") for i in ids)
    assert ids_bytes(ids, "H") == want and ids_bytes(ids, "I") == b"".join(i.to_bytes(4, "little") for i in ids)
    monkeypatch.setitem(sys.modules, "numpy", None)  # (import numpy now fails: the standard library's path)
    assert ids_bytes(ids, "H") == want and ids_bytes(array("I"), "H") == b""


def test_a_stream_corpus_is_the_text_and_its_tokenizer_the_files(tmp_path):
    """Continuous text: the training tokens are the file's tokens (+ the BOS that ends it), and BPE is
    learnt exactly as `train --data FILE --data-mode stream --val-frac 0` learns it."""
    from microgpt.data.text import Dataset
    text = make_prose(tmp_path / "p.txt")
    prep([tmp_path / "p.txt"], tmp_path / "c", tokenizer="bpe", vocab_size=320, text_mode="stream", val_frac=0)
    corpus = PreparedCorpus(str(tmp_path / "c"))
    ds = Dataset(text, "stream", 16, 0.0, random.Random(0), bpe_vocab_size=320)
    assert corpus.tokenizer.to_dict() == ds.tokenizer.to_dict()
    sp = corpus.split("train")
    assert sp.read(0, sp.n_tokens) == ds.train + [ds.tokenizer.BOS]
    with pytest.raises(MicroGPTError, match="continuous text"):
        ShardedDataset(corpus, "docs", 16, random.Random(0))


def test_a_corpus_of_a_files_lines_trains_exactly_as_the_file(tmp_path, words):
    prep([words], tmp_path / "c", val_frac=0)
    small = dict(model=GPTConfig(n_embd=8, n_head=2), eval_every=0, quiet=True)
    runs = [Run(RunConfig(out=str(tmp_path / name), data=data, train=TrainConfig(steps=30, val_frac=0), **small))
            for name, data in (("file", words), ("corpus", str(tmp_path / "c")))]
    for r in runs:
        r.train()
    assert runs[0].model.get_weights() == runs[1].model.get_weights()
    assert runs[0].sample(5) == runs[1].sample(5)
    assert "emma" in runs[1].ds.train_text and "zzz" not in runs[1].ds.train_text


def test_stream_training_from_shards_resumes_exactly_and_evaluates_a_strided_sample(tmp_path):
    make_prose(tmp_path / "p.txt", 60_000)
    prep([tmp_path / "p.txt"], tmp_path / "c", text_mode="stream", val_frac=0.2)
    cfg = dict(data=str(tmp_path / "c"), model=GPTConfig(n_embd=8, n_head=2, block_size=16), eval_every=0,
               quiet=True, train=TrainConfig(steps=12, batch_size=4, data_mode="stream", val_frac=0.2))
    straight = Run(RunConfig(out=str(tmp_path / "s"), **cfg))
    straight.train()
    first = Run(RunConfig(out=str(tmp_path / "r"), stop_after=5, **cfg))
    first.train()
    resumed = Run(RunConfig(out=str(tmp_path / "r"), **cfg), resume=True)
    resumed.train()
    assert resumed.model.get_weights() == straight.model.get_weights()
    val = straight.ds.val
    seqs = straight.ds.eval_sequences("val", 10)
    assert len(seqs) == 10 and all(len(s) == 17 for s in seqs)
    every = straight.ds.eval_sequences("val", 0)
    assert sum(len(s) - 1 for s in every) == val.n_tokens - 1  # all of it: every token a target once
    assert seqs[-1] in every and seqs[-1] != every[9]  # spread over the split, not its first windows


def test_a_stopped_prepare_resumes_to_the_same_shards(tmp_path, monkeypatch):
    make_lines(tmp_path / "a.txt", 2000)
    whole = prep([tmp_path / "a.txt"], tmp_path / "whole")
    real, calls = encode.encode_item, []

    def stop_after_three(plan, k, progress=None):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(k)
        return real(plan, k, progress)

    monkeypatch.setitem(pool.TASKS, "encode", stop_after_three)
    with pytest.raises(pool.Stopped):
        prep([tmp_path / "a.txt"], tmp_path / "c")
    assert not (tmp_path / "c" / "manifest.json").exists()  # nothing a run could read
    with pytest.raises(MicroGPTError, match="--resume"):
        prep([tmp_path / "a.txt"], tmp_path / "c")
    with pytest.raises(MicroGPTError, match="--val-frac differs"):
        prepare(PrepareOptions((str(tmp_path / "a.txt"),), str(tmp_path / "c"), val_frac=0.3, item_bytes=2000),
                resume=True, log=lambda m: None)
    monkeypatch.setitem(pool.TASKS, "encode", real)
    resumed = prepare(PrepareOptions((str(tmp_path / "a.txt"),), str(tmp_path / "c"), item_bytes=2000),
                      resume=True, log=lambda m: None)
    assert resumed == whole
    with pytest.raises(MicroGPTError, match="already holds a prepared corpus"):
        prep([tmp_path / "a.txt"], tmp_path / "c")


def test_a_second_prepare_into_the_same_folder_is_refused(tmp_path):
    from microgpt.lock import RunLock
    make_lines(tmp_path / "a.txt")
    (tmp_path / "c").mkdir()
    held = RunLock(str(tmp_path / "c"))
    held.acquire()
    try:
        with pytest.raises(MicroGPTError, match="is being written by process"):
            prep([tmp_path / "a.txt"], tmp_path / "c")
    finally:
        held.release()


def test_damaged_shards_are_named(tmp_path):
    make_lines(tmp_path / "a.txt")
    m = prep([tmp_path / "a.txt"], tmp_path / "c")
    shard = tmp_path / "c" / m["shards"][0]["file"]
    raw = bytearray(shard.read_bytes())
    raw[3] ^= 1
    shard.write_bytes(bytes(raw))
    p = run_cli("data", "check", tmp_path / "c")
    assert p.returncode == 2 and m["shards"][0]["file"] in p.stdout and "damaged" in p.stderr
    shard.write_bytes(bytes(raw[:-2]))
    p = run_cli("train", "--data", tmp_path / "c", "--steps", "2", "--out", tmp_path / "r", "--batch-size", "64")
    assert p.returncode == 2 and m["shards"][0]["file"] in p.stderr and "Traceback" not in p.stderr


def test_the_command_line_prepares_trains_samples_and_evaluates(tmp_path, words):
    p = run_cli("data", "prepare", words, "--out", tmp_path / "c", "--workers", "2", check=True)
    assert "train on it: microgpt train --data" in p.stdout
    info = run_cli("data", "info", tmp_path / "c", check=True).stdout
    counts = [int(n) for n in re.findall(r"(?:train|val): (\d+) documents", info)]
    assert sum(counts) == len(WORDS) and counts[1] >= 1, info
    run_cli("train", "--data", tmp_path / "c", "--steps", "20", "--out", tmp_path / "r", "--num-samples", "2",
            check=True)
    cfg = json.loads((tmp_path / "r" / "checkpoint" / "config.json").read_text())
    assert cfg["data"]["sha256"] == PreparedCorpus(str(tmp_path / "c")).sha256
    ev = run_cli("eval", "--out", tmp_path / "r", check=True).stdout
    assert "val" in ev
    s = run_cli("sample", "--out", tmp_path / "r", "--num", "3", check=True).stdout
    assert len(s.splitlines()) == 3
    bad = run_cli("train", "--data", tmp_path / "c", "--tokenizer", "bpe", "--vocab-size", "300",
                  "--out", tmp_path / "r2")
    assert bad.returncode == 2 and "tokenized already" in bad.stderr


def test_the_docs_order_is_a_permutation_at_any_size():
    for n in (1, 2, 7, 1000, 1025):
        assert sorted(feistel(i, n, 12345) for i in range(n)) == list(range(n))
    order = DocOrder(10, random.Random(3))
    assert sorted(order[k] for k in range(10)) == list(range(10)) and order[3] == order[13]


@pytest.mark.slow  # (36 s on a busy 2-core machine; the DDP machinery itself is test_torch.py's, in the suite)
def test_two_gloo_ranks_on_shards_train_as_one_process(tmp_path):
    """torchrun, 2 CPU processes, each its half of every step's windows: the weights after 4 steps equal
    one process with the same global batch (float64, 1e-9)."""
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    import subprocess
    import sys

    from helpers import ROOT, max_abs_diff

    from microgpt import checkpoint
    make_prose(tmp_path / "p.txt")
    prep([tmp_path / "p.txt"], tmp_path / "c", text_mode="stream")
    common = ["train", "--data", tmp_path / "c", "--engine", "torch", "--dtype", "float64", "--device", "cpu",
              "--steps", "4", "--batch-size", "4", "--n-embd", "8", "--n-head", "2", "--eval-every", "0",
              "--num-samples", "0"]
    run_cli(*common, "--out", tmp_path / "one", env={"OMP_NUM_THREADS": "1"}, check=True)
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "microgpt", *map(str, common), "--out", str(tmp_path / "two")],
                       capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    a, b = checkpoint.load(str(tmp_path / "one")), checkpoint.load(str(tmp_path / "two"))
    assert b.state["step"] == 4 and max_abs_diff(a.weights, b.weights) <= 1e-9


@pytest.mark.slow  # (a real SIGTERM to a real pool of workers: 80 s on a busy machine)
def test_sigterm_keeps_the_finished_items_and_resume_completes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT
    docs = make_lines(tmp_path / "a.txt", 60_000)
    code = ("import sys\nfrom microgpt.data.prepare import PrepareOptions, prepare\n"
            "from microgpt.data.pool import Stopped\n"
            f"o = PrepareOptions(({str(tmp_path / 'a.txt')!r},), {str(tmp_path / 'c')!r}, tokenizer='bpe', "
            "vocab_size=300, encoder='python', item_bytes=20000)\n"
            "try:\n    prepare(o, workers=2, resume='--resume' in sys.argv)\n"
            "except Stopped as e:\n    sys.exit(128 + e.signum)\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = tmp_path / "c" / ".prepare"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(state.glob("item-*.json"))) < 2:
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 128 + signal.SIGTERM
    kept = len(list(state.glob("item-*.json")))
    assert kept >= 2 and not (tmp_path / "c" / "manifest.json").exists()
    subprocess.run([sys.executable, "-c", code, "--resume"], env=env, check=True, capture_output=True)
    corpus = PreparedCorpus(str(tmp_path / "c"))
    assert sorted(all_docs(corpus, "train") + all_docs(corpus, "val")) == sorted(docs)


@pytest.mark.parametrize("content, expected", [
    ("", "is empty: remove it"),
    ("\n  \n\n", "holds no documents"),
    ('{"text": "ok"}\n{"txt": "no"}\n', "line 2: no field 'text' (it has: txt): pass --text-field NAME"),
])
def test_bad_sources_are_one_line_with_nothing_a_run_could_read(tmp_path, content, expected):
    src = tmp_path / ("s.jsonl" if "{" in content else "s.txt")
    src.write_text(content)
    good = tmp_path / "good.txt"
    good.write_text("hello\nworld\n")
    p = run_cli("data", "prepare", good, src, "--out", tmp_path / "c", "--workers", "2")
    err = [line for line in p.stderr.splitlines() if line.startswith("error")]
    assert p.returncode == 2 and len(err) == 1 and expected in err[0] and str(src) in err[0], p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "c" / "manifest.json").exists()


def test_jsonl_gz_zst_and_parquet_decode_back_exactly(tmp_path):
    """Every format through prepare (2 workers, BPE by tiktoken): the shards hold exactly the documents."""
    import gzip
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    zstd = pytest.importorskip("zstandard")
    rng = random.Random(5)
    docs = {name: [" ".join(rng.choice(UNICODE + ["the king", "a b c"]) for _ in range(rng.randint(1, 40)))
                   for _ in range(150)] for name in ("a", "b", "c")}
    lines = lambda ds: "".join(json.dumps({"id": i, "text": d}) + "\n" for i, d in enumerate(ds)).encode()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.jsonl.gz").write_bytes(gzip.compress(lines(docs["a"])))
    (tmp_path / "src" / "b.jsonl.zst").write_bytes(zstd.ZstdCompressor().compress(lines(docs["b"])))
    table = pa.table({"text": docs["c"], "id": [str(i) for i in range(150)], "language": ["en"] * 150})
    pq.write_table(table, tmp_path / "src" / "c.parquet", row_group_size=40)
    m = prep([tmp_path / "src"], tmp_path / "c", workers=2, tokenizer="bpe", vocab_size=300)
    corpus = PreparedCorpus(str(tmp_path / "c"))
    assert sorted(all_docs(corpus, "train") + all_docs(corpus, "val")) == sorted(d for ds in docs.values() for d in ds)
    assert [s["documents"] for s in m["sources"]] == [150, 150, 150]
