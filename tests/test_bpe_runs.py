"""BPE in runs: every engine trains, samples, evaluates and resumes a BPE run alike; the tokenizer
learns from the training split only; `tokenizer train`, `train --tokenizer FILE`, `tokenize`;
bits per byte."""

import json
import math
import random

import pytest
from helpers import NAMES, SHAKESPEARE, assert_one_line_error, printed_samples, recorded_losses, reference_run, run_cli

from microgpt import checkpoint
from microgpt.config import RunConfig, TrainConfig
from microgpt.data.text import split_docs
from microgpt.files import read_text
from microgpt.stages.pretrain import Run
from microgpt.tokenizers.bpe import BPETokenizer

BPE = ["--tokenizer", "bpe", "--vocab-size", "300"]
SMALL = ["--steps", "16", "--batch-size", "3", "--n-embd", "8", "--n-head", "2", "--eval-every", "8",
         "--num-samples", "4", "--dtype", "float64"]


@pytest.fixture(scope="module")
def bpe_runs(tmp_path_factory, names_path):
    """The same small BPE run trained by every engine, in float64."""
    base = tmp_path_factory.mktemp("bpe")
    out = {}
    for engine in ("python", "numpy", "torch"):
        pytest.importorskip("numpy")
        extra = ["--device", "cpu"] if engine == "torch" else []
        if engine == "torch":
            pytest.importorskip("torch")
        p = run_cli("train", *BPE, *SMALL, "--engine", engine, *extra, "--out", base / engine, check=True)
        out[engine] = (base / engine, p.stdout)
    return out


def test_every_engine_trains_a_bpe_run_alike(bpe_runs):
    ref_dir, ref_out = bpe_runs["python"]
    for engine, (run_dir, stdout) in bpe_runs.items():
        assert "vocab size 300" in stdout
        losses = recorded_losses(run_dir)
        assert len(losses) == 16
        assert max(abs(a - b) for a, b in zip(losses, recorded_losses(ref_dir))) <= 1e-9, engine
        assert printed_samples(stdout) == printed_samples(ref_out), engine
    saved = checkpoint.load(str(ref_dir)).raw_config["tokenizer"]
    assert saved["type"] == "bpe" and len(saved["merges"]) == 300 - 256 - 1
    assert saved["special_tokens"] == {"<|bos|>": 299} and isinstance(saved["pattern"], str)


def test_a_bpe_run_samples_evaluates_and_resumes_in_any_engine(bpe_runs, tmp_path):
    run_dir, stdout = bpe_runs["python"]
    for engine in ("numpy", "torch"):
        extra = ["--device", "cpu"] if engine == "torch" else []
        s = run_cli("sample", "--out", run_dir, "--engine", engine, *extra, "--dtype", "float64", "--num", "4",
                    check=True)
        assert [t.split("  (")[0] for t in printed_samples(s.stdout)] == printed_samples(stdout)
    evals = {e: run_cli("eval", "--out", run_dir, "--engine", e, "--max-docs", "50", check=True).stdout
             for e in ("python", "numpy")}
    assert evals["python"] == evals["numpy"] and "bits per byte" in evals["python"]
    # resume: stopped at step 7 by one engine, finished by another = the unbroken run
    out = tmp_path / "resumed"
    run_cli("train", *BPE, *SMALL, "--out", out, "--stop-after", "7", check=True)
    run_cli("train", "--out", out, "--resume", "--engine", "numpy", "--dtype", "float64", check=True)
    a, b = checkpoint.load(str(out)).weights, checkpoint.load(str(run_dir)).weights
    assert max(abs(x - y) for n in a for ra, rb in zip(a[n], b[n]) for x, y in zip(ra, rb)) <= 1e-9


def test_the_tokenizer_learns_from_the_training_split_only(names_path):
    run = Run(RunConfig(data=NAMES, tokenizer="bpe", vocab_size=320, train=TrainConfig(), quiet=True))
    docs = split_docs(read_text(NAMES))
    random.Random(42).shuffle(docs)
    n_val = int(len(docs) * 0.1)
    expected = BPETokenizer.train("\n".join(docs[:len(docs) - n_val]), 320)
    assert run.ds.tokenizer.merges == expected.merges
    assert run.ds.tokenizer.merges != BPETokenizer.train("\n".join(docs), 320).merges  # val text would change them


def test_stream_mode_splits_the_text_before_tokenizing(tmp_path):
    if not __import__("os").path.exists(SHAKESPEARE):
        pytest.skip("tinyshakespeare.txt not found")
    text = read_text(SHAKESPEARE)[:8000]
    data = tmp_path / "s.txt"
    data.write_text(text)
    tc = TrainConfig(data_mode="stream")
    bpe = Run(RunConfig(data=str(data), tokenizer="bpe", vocab_size=300, train=tc, quiet=True))
    char = Run(RunConfig(data=str(data), train=tc, quiet=True))
    cut = len(text) - int(len(text) * 0.1)
    assert bpe.ds.tokenizer.merges == BPETokenizer.train(text[:cut], 300).merges
    assert bpe.ds.tokenizer.decode(bpe.ds.val) == char.ds.tokenizer.decode(char.ds.val) == text[cut:]
    # bits per byte: every validation token after the first is a target, so both tokenizers are
    # scored on the same text (but for the first token's few bytes)
    for run in (bpe, char):
        r = run.evaluate_split("val")
        covered = run.ds.tokenizer.decode(run.ds.val[1:]).encode()
        assert r["tokens"] == len(run.ds.val) - 1 and len(covered) >= len(text[cut:].encode()) - 4
        assert r["bpb"] == pytest.approx(r["loss"] * r["tokens"] / math.log(2) / len(covered), rel=1e-12)


def test_bits_per_byte_of_a_char_run_on_names(names_path):
    """Names are ASCII: a character is one byte and BOS stands for the newline, so bpb = loss / ln 2."""
    r = reference_run().evaluate_split("val", 200)
    assert r["bpb"] == pytest.approx(r["loss"] / math.log(2), rel=1e-12)


def test_tokenizer_train_then_reuse_and_tokenize(tmp_path, names_path):
    tok_file = tmp_path / "tok.json"
    p = run_cli("tokenizer", "train", "--vocab-size", "280", "--out", tok_file, check=True)
    assert "280-token BPE tokenizer" in p.stdout and "bytes per token" in p.stdout
    saved = json.loads(tok_file.read_text())
    assert saved["type"] == "bpe" and len(saved["merges"]) == 280 - 257
    run_cli("train", "--tokenizer", tok_file, "--out", tmp_path / "r", "--steps", "3", "--eval-every", "0",
            "--num-samples", "0", check=True)
    assert checkpoint.load(str(tmp_path / "r")).raw_config["tokenizer"] == saved
    for source in (["--tokenizer", tok_file], ["--out", tmp_path / "r"]):
        t = run_cli("tokenize", *source, "anna és 日本", check=True)
        lines = t.stdout.splitlines()
        n = int(lines[0].split()[0])
        assert lines[0] == f"{n} tokens for 15 bytes ({15 / n:.2f} bytes per token)"
        assert "␣" in lines[1] and len(lines) == 2 + n and "\\x" in lines[1]  # CJK bytes cut by the merges
        assert all(line.split()[0].isdigit() for line in lines[2:])
    # a char run's tokenizer: an unknown character is a one-line error
    run_cli("train", "--out", tmp_path / "c", "--steps", "2", "--eval-every", "0", "--num-samples", "0", check=True)
    assert_one_line_error(run_cli("tokenize", "--out", tmp_path / "c", "Zoë"), "vocabulary")


@pytest.mark.parametrize("content,words", [
    ("{not json", "not valid JSON"),
    ('{"type": "bpe", "pattern": "x", "merges": [], "special_tokens": {"<|bos|>": 256}}', "pattern"),
    ('{"type": "bpe", "merges": [[300, 1]], "special_tokens": {"<|bos|>": 257}}', "pattern"),
    ('{"type": "wordpiece"}', "unknown tokenizer type"),
    ('[' * 100000, "not valid JSON"),
])
def test_a_malformed_tokenizer_file_is_one_line(tmp_path, names_path, content, words):
    f = tmp_path / "bad.json"
    f.write_text(content)
    p = run_cli("train", "--tokenizer", f, "--out", tmp_path / "r", "--steps", "2")
    assert_one_line_error(p, words, "bad.json")
    assert_one_line_error(run_cli("tokenize", "--tokenizer", f, "hi"), words)
    assert not (tmp_path / "r").exists()


def test_bpe_options_are_checked(tmp_path, names_path):
    assert_one_line_error(run_cli("train", "--tokenizer", "bpe", "--out", tmp_path / "r"), "--vocab-size")
    assert_one_line_error(run_cli("train", "--tokenizer", "bpe", "--vocab-size", "100", "--out", tmp_path / "r"),
                          "vocab_size must be at least", "--vocab-size")
    assert not (tmp_path / "r").exists()


def test_decoding_a_token_cut_inside_a_character_never_fails():
    tok = BPETokenizer.train("日本語 日本語", 262)
    assert tok.decode(tok.encode("日本")) == "日本"
    assert tok.decode([0xe6]) == "\ufffd" and tok.decode([0xe6, 0x97]) == "\ufffd"  # the first bytes of 日
    assert tok.decode([0xe6, 0x97, ord("a")]) == "\ufffda"
