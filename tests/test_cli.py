"""The CLI as a user runs it: sub-commands, own data, schedules, eval, plot."""

import json
import math
import re

import pytest
from helpers import run_cli

from microgpt.config import TrainConfig, learning_rate

QUICK = ["--eval-every", "0", "--graph", "textbook"]


def test_no_sub_command_means_train(tmp_path, names_path):
    p = run_cli("--steps", "2", "--out", tmp_path / "r", "--num-samples", "2", *QUICK, check=True)
    assert re.search(r"^step    2 /    2 \| loss \d\.\d{4}", p.stdout, re.M)
    assert len(re.findall(r"^sample +\d+: ", p.stdout, re.M)) == 2


def test_schedules():
    lin = TrainConfig(steps=100, lr=0.01)
    assert learning_rate(lin, 0) == 0.01 and learning_rate(lin, 50) == pytest.approx(0.005)
    const = TrainConfig(steps=100, lr=0.01, lr_schedule="constant")
    assert learning_rate(const, 99) == 0.01
    cos = TrainConfig(steps=110, lr=0.01, lr_schedule="cosine", warmup_steps=10)
    assert learning_rate(cos, 0) == pytest.approx(0.001)
    assert learning_rate(cos, 9) == pytest.approx(0.01)
    assert learning_rate(cos, 10) == pytest.approx(0.01)
    assert learning_rate(cos, 60) == pytest.approx(0.001 + 0.5 * 0.009)
    assert learning_rate(cos, 110) == pytest.approx(0.001)
    assert all(learning_rate(cos, s) >= learning_rate(cos, s + 1) for s in range(10, 110))


def test_own_data_train_sample_eval(tmp_path):
    words = ["apple", "apricot", "banana", "blueberry", "cherry", "cranberry", "date", "elderberry",
             "fig", "grape", "guava", "kiwi", "lemon", "lime", "mango", "melon", "nectarine", "orange"]
    data = tmp_path / "fruit.txt"
    data.write_text("\n".join(words * 3) + "\n")
    out = tmp_path / "fruit"
    p = run_cli("train", "--data", data, "--out", out, "--steps", "30", "--batch-size", "4", "--block-size", "8",
                "--n-embd", "8", "--n-head", "2", "--lr-schedule", "cosine", "--warmup-steps", "5",
                "--eval-every", "10", "--eval-docs", "0", "--num-samples", "3", "--graph", "textbook", check=True)
    assert "note:" in p.stderr  # 'elderberry' etc. are cut to block_size tokens
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert [r["step"] for r in rows if "val_loss" in r] == [10, 20, 30]
    assert all(math.isfinite(r["train_loss"]) and r["tokens_per_s"] > 0 for r in rows)
    s = run_cli("sample", "--out", out, "--num", "5", "--prompt", "b", "--top-k", "3", "--seed", "1",
                "--graph", "textbook", check=True)
    samples = re.findall(r"^sample +\d+: (\S*)  \((in train|in val|new)\)$", s.stdout, re.M)
    assert len(samples) == 5 and all(text.startswith("b") for text, _ in samples)
    e = run_cli("eval", "--out", out, "--graph", "textbook", check=True)
    assert re.search(r"^train loss \d+\.\d{4} \| \d+\.\d{4} bits per byte \(\d+ sequences, \d+ tokens\)$",
                     e.stdout, re.M)
    assert re.search(r"^val loss \d+\.\d{4}", e.stdout, re.M)


def test_plot(tmp_path, names_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "r"
    run_cli("train", "--out", out, "--steps", "3", "--num-samples", "0", *QUICK, check=True)
    p = run_cli("plot", "--out", out, check=True)
    assert (out / "loss.png").stat().st_size > 1000 and "loss.png" in p.stdout
