"""Data that changed under a run: --resume on different content refuses (both hashes), unless
told --allow-data-change. A UTF-8 byte-order mark is not a character of the vocabulary."""

import hashlib

from helpers import assert_one_line_error, run_cli

from microgpt import checkpoint

TINY = ["--n-embd", "4", "--n-head", "1", "--block-size", "8", "--eval-every", "0", "--num-samples", "0"]


def test_resume_on_changed_data_refuses_unless_allowed(tmp_path):
    data = tmp_path / "words.txt"
    data.write_text("emma\nolivia\nava\nisabella\nsophia\n")
    out = tmp_path / "run"
    run_cli("train", "--out", out, "--data", data, "--steps", "6", "--stop-after", "2", *TINY, check=True)
    then = hashlib.sha256(data.read_bytes()).hexdigest()
    data.write_text("emma\nolivia\nava\nisabella\nsophia\nmia\n")  # (the same characters: it would tokenize)
    now = hashlib.sha256(data.read_bytes()).hexdigest()
    p = run_cli("train", "--out", out, "--resume", "--stop-after", "4")
    assert p.returncode == 2
    assert_one_line_error(p, "changed since this run began", then[:16], now[:16], "--allow-data-change")
    assert checkpoint.load(str(out)).step == 2  # nothing written
    run_cli("train", "--out", out, "--resume", "--stop-after", "4", "--allow-data-change", check=True)
    assert checkpoint.load(str(out)).step == 4


def test_a_byte_order_mark_is_not_a_character(tmp_path):
    plain, bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_text("emma\nolivia\nava\n", encoding="utf-8")
    bom.write_text("emma\nolivia\nava\n", encoding="utf-8-sig")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    for path in (plain, bom):
        run_cli("train", "--out", tmp_path / path.stem, "--data", path, "--steps", "1", "--val-frac", "0", *TINY,
                check=True)
    a, b = (checkpoint.load(str(tmp_path / name)) for name in ("plain", "bom"))
    assert "\ufeff" not in b.tokenizer.chars
    assert a.tokenizer.to_dict() == b.tokenizer.to_dict() and a.weights == b.weights
