"""Bad input: one line naming the problem and the fix, non-zero exit, no traceback, nothing lost."""

import os
import shutil

import pytest
from helpers import ROOT, assert_one_line_error, run_cli

from microgpt import checkpoint

QUICK = ["--steps", "3", "--eval-every", "0", "--num-samples", "1", "--graph", "textbook"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, names_path):
    out = tmp_path_factory.mktemp("bad") / "run"
    run_cli("train", "--out", out, *QUICK, check=True)
    return out


def _snapshot(run_dir):
    return {f: open(os.path.join(run_dir, "checkpoint", f), "rb").read()
            for f in os.listdir(os.path.join(run_dir, "checkpoint"))}


def test_missing_data_file(tmp_path):
    assert_one_line_error(run_cli("train", "--data", tmp_path / "nope.txt", "--out", tmp_path / "r", *QUICK),
                          "does not exist")


def test_empty_data_file(tmp_path):
    f = tmp_path / "empty.txt"
    f.write_text("\n  \n")
    assert_one_line_error(run_cli("train", "--data", f, "--out", tmp_path / "r", *QUICK), "empty")


def test_binary_data_file(tmp_path):
    f = tmp_path / "blob.bin"
    f.write_bytes(bytes(range(256)) * 4)
    assert_one_line_error(run_cli("train", "--data", f, "--out", tmp_path / "r", *QUICK), "binary")


def test_non_utf8_data_file(tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("caf\u00e9\nna\u00efve\n".encode("latin-1"))
    assert_one_line_error(run_cli("train", "--data", f, "--out", tmp_path / "r", *QUICK), "UTF-8")


def test_long_documents_are_truncated_with_one_note(tmp_path):
    f = tmp_path / "long.txt"
    f.write_text("a" * 40 + "\n" + "b" * 50 + "\nabc\n")
    p = run_cli("train", "--data", f, "--out", tmp_path / "r", *QUICK, "--val-frac", "0", "--block-size", "8")
    assert p.returncode == 0, p.stderr
    notes = [l for l in p.stderr.splitlines() if l.startswith("note:")]
    assert len(notes) == 1 and "2 documents" in notes[0] and "cut" in notes[0]


def test_n_embd_not_divisible_by_n_head(tmp_path):
    assert_one_line_error(run_cli("train", "--n-embd", "10", "--n-head", "4", "--out", tmp_path / "r", *QUICK),
                          "divisible")


@pytest.mark.parametrize("flag", ["--n-layer", "--n-embd", "--n-head", "--block-size", "--steps", "--batch-size"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_sizes_and_steps(tmp_path, flag, value):
    args = ["train", "--out", tmp_path / "r", *QUICK, flag, value]
    assert_one_line_error(run_cli(*args), "positive")
    assert not os.path.exists(tmp_path / "r" / "checkpoint")


def test_unknown_engine(tmp_path):
    assert_one_line_error(run_cli("train", "--engine", "tpu", "--out", tmp_path / "r", *QUICK), "unknown engine")


def test_engine_whose_extra_is_not_installed(tmp_path):
    fake = tmp_path / "site" / "numpy"  # a numpy that is not there, as on a core-only install
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'numpy'\", name='numpy')\n")
    p = run_cli("train", "--engine", "numpy", "--out", tmp_path / "r", "--steps", "1",
                env={"PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{ROOT}"})
    assert_one_line_error(p, "pip install 'microgpt[numpy]'", "--engine")
    assert not os.path.exists(tmp_path / "r")


def test_unknown_graph(tmp_path):
    assert_one_line_error(run_cli("train", "--graph", "magic", "--out", tmp_path / "r", *QUICK[:-2]), "graph")


def test_prompt_character_outside_the_vocabulary(trained_run):
    assert_one_line_error(run_cli("sample", "--out", trained_run, "--prompt", "Z9"), "vocabulary")


def test_training_into_an_existing_run_refuses_and_keeps_it(trained_run):
    before = _snapshot(trained_run)
    assert_one_line_error(run_cli("train", "--out", trained_run, *QUICK), "--resume", "--overwrite")
    assert _snapshot(trained_run) == before


def test_resume_with_a_different_model_shape_refuses(trained_run):
    before = _snapshot(trained_run)
    assert_one_line_error(run_cli("train", "--out", trained_run, "--resume", "--steps", "6", "--n-embd", "32"),
                          "n_embd")
    assert _snapshot(trained_run) == before


def test_resume_without_a_checkpoint(tmp_path):
    assert_one_line_error(run_cli("train", "--out", tmp_path / "none", "--resume"), "no checkpoint")


def _copy(run, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(run, dst)
    return dst


def test_truncated_checkpoint(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    f = run / "checkpoint" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    for cmd in ("sample", "eval"):
        assert_one_line_error(run_cli(cmd, "--out", run), "corrupt or truncated")


def test_corrupt_checkpoint_header(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    f = run / "checkpoint" / "model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[10:20] = b"\xff" * 10
    f.write_bytes(bytes(raw))
    assert_one_line_error(run_cli("sample", "--out", run), "corrupt")


def test_corrupt_checkpoint_json(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    (run / "checkpoint" / "config.json").write_text("{not json")
    assert_one_line_error(run_cli("eval", "--out", run), "corrupt")


def test_checkpoint_of_a_different_model_shape(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    cfg = run / "checkpoint" / "config.json"
    cfg.write_text(cfg.read_text().replace('"n_embd": 16', '"n_embd": 32'))
    assert_one_line_error(run_cli("sample", "--out", run), "different model shape")


def test_loss_that_becomes_nan_stops_and_keeps_the_last_checkpoint(tmp_path, names_path):
    out = tmp_path / "r"
    run_cli("train", "--out", out, "--steps", "40", "--stop-after", "2", *QUICK[2:], check=True)
    before = _snapshot(out)
    p = run_cli("train", "--out", out, "--resume", "--lr", "1e300", "--eval-every", "0")
    assert_one_line_error(p, "loss became", "step 2")
    assert _snapshot(out) == before
    assert checkpoint.load(str(out)).state["step"] == 2


@pytest.mark.parametrize("cmd,flag,value,words", [
    ("sample", "--temperature", "-1", "--temperature must be a finite number >= 0"),
    ("sample", "--temperature", "nan", "--temperature must be a finite number >= 0"),
    ("sample", "--temperature", "inf", "--temperature must be a finite number >= 0"),
    ("sample", "--top-k", "-2", "--top-k must be"),
    ("sample", "--num", "-1", "--num must be"),
    ("sample", "--num", "x", "--num: invalid int value"),
    ("eval", "--max-docs", "-5", "--max-docs must be"),
    ("train", "--temperature", "nan", "--temperature must be"),
    ("train", "--lr", "nan", "--lr must be a finite number > 0"),
    ("train", "--lr", "inf", "--lr must be a finite number > 0"),
    ("train", "--lr", "0", "--lr must be a finite number > 0"),
    ("train", "--weight-decay", "-0.1", "--weight-decay must be a finite number >= 0"),
    ("train", "--dropout", "1", "--dropout must be a finite number in [0, 1)"),
    ("train", "--val-frac", "nan", "--val-frac must be"),
    ("train", "--warmup-steps", "-1", "--warmup-steps must be"),
    ("train", "--eval-every", "-1", "--eval-every must be >= 0"),
    ("train", "--log-every", "0", "--log-every must be >= 1"),
    ("train", "--stop-after", "0", "--stop-after must be >= 1"),
    ("train", "--num-samples", "-1", "--num-samples must be >= 0"),
])
def test_numeric_options_are_checked_alike_in_every_command(trained_run, tmp_path, cmd, flag, value, words):
    out = trained_run if cmd != "train" else tmp_path / "new"
    args = [cmd, "--out", out] + (QUICK if cmd == "train" else []) + [flag, value]
    assert_one_line_error(run_cli(*args), words)
    assert not (tmp_path / "new").exists()


def test_temperature_zero_is_greedy_decoding(trained_run):
    """--temperature 0 picks the likeliest token every time: the same sample whatever the seed."""
    outs = [run_cli("sample", "--out", trained_run, "--temperature", "0", "--num", "3", "--seed", str(s), check=True)
            for s in (1, 2)]
    samples = [l.split(": ", 1)[1] for l in outs[0].stdout.splitlines()]
    assert len(set(samples)) == 1 and outs[0].stdout == outs[1].stdout
