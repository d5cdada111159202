"""A newcomer's rough edges, each held by a test: a run made longer without a jump in its learning
rate (wsd) or with one line saying so, a one-line file that docs mode would cut away, a relative
MICROGPT_DATA_DIR from anywhere, and a chat that asks nothing of an empty line."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import DATA_DIR, ROOT, run_cli

from microgpt import checkpoint
from microgpt.config import TrainConfig, decay_start, learning_rate

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "runs-0.2.0")


def test_wsd_warms_up_holds_then_decays_to_zero():
    tc = TrainConfig(steps=100, lr=0.01, lr_schedule="wsd", warmup_steps=10, decay_frac=0.2)
    lrs = [learning_rate(tc, s) for s in range(100)]
    assert decay_start(tc) == 80
    assert lrs[0] == pytest.approx(0.001) and lrs[9] == pytest.approx(0.01)
    assert all(lr == 0.01 for lr in lrs[10:81])  # (step 80 is the decay's first: still the full rate)
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:])) and lrs[99] == pytest.approx(0.01 / 20)
    longer = TrainConfig(steps=200, lr=0.01, lr_schedule="wsd", warmup_steps=10, decay_frac=0.2)
    assert [learning_rate(longer, s) for s in range(80)] == lrs[:80]  # the same run until its decay


def _train(*args, check=True):
    return run_cli("train", "--n-embd", 8, "--n-head", 2, "--eval-every", 0, "--num-samples", 0, *args, check=check)


def test_a_wsd_run_made_longer_equals_the_longer_run_from_the_start(tmp_path, words):
    flags = ["--data", words, "--batch-size", 2, "--lr-schedule", "wsd", "--decay-frac", 0.25, "--warmup-steps", 2]
    _train(*flags, "--steps", 40, "--out", tmp_path / "straight")
    run = tmp_path / "run"
    _train(*flags, "--steps", 20, "--out", run)
    assert checkpoint.load(str(run / "stable")).step == 15  # the run as its decay began
    p = _train("--out", run, "--resume", "--steps", 40)
    assert "continuing from" in p.stderr and "decayed-20" in p.stderr
    got, want = checkpoint.load(str(run)), checkpoint.load(str(tmp_path / "straight"))
    assert got.step == 40 and got.weights == want.weights and got.optimizer == want.optimizer
    assert checkpoint.load(str(run / "decayed-20")).step == 20  # the finished run, kept
    assert run_cli("sample", "--out", run / "decayed-20", "--num", 2).returncode == 0


def test_a_longer_cosine_schedule_says_the_learning_rate_jumps(tmp_path, words):
    run = tmp_path / "run"
    _train("--data", words, "--steps", 10, "--lr-schedule", "cosine", "--out", run)
    p = _train("--out", run, "--resume", "--steps", 30)
    notes = [line for line in p.stderr.splitlines() if "moves the learning rate" in line]
    assert len(notes) == 1 and "wsd" in notes[0]
    p = _train("--out", run, "--resume", "--steps", 31)  # (a step on from where it stopped: no jump, no note)
    assert "moves the learning rate" not in p.stderr


def test_a_one_line_file_in_docs_mode_suggests_stream_mode(tmp_path):
    text = tmp_path / "one-line.txt"
    text.write_text("the quick brown fox jumps over the lazy dog " * 200 + "\n")
    p = _train("--data", text, "--steps", 1, "--val-frac", 0, "--out", tmp_path / "r")
    assert "--data-mode stream" in p.stderr and "never trained on" in p.stderr


def test_a_relative_data_dir_works_from_any_folder(tmp_path, monkeypatch):
    from microgpt.data import text
    relative = os.path.relpath(DATA_DIR, text.START_DIR)
    monkeypatch.setenv("MICROGPT_DATA_DIR", relative)
    monkeypatch.chdir(tmp_path)  # (the test suite, or a user's script, moves elsewhere after starting)
    assert os.path.samefile(text.default_names_path(), os.path.join(DATA_DIR, "names.txt"))


def test_the_readme_data_dir_as_typed(tmp_path):
    """`MICROGPT_DATA_DIR=../shared/data microgpt ...` from the checkout (the README's commands)."""
    p = run_cli("train", "--steps", 2, "--n-embd", 8, "--n-head", 2, "--out", tmp_path / "r", "--quiet",
                env={"MICROGPT_DATA_DIR": os.path.relpath(DATA_DIR, ROOT)})
    assert p.returncode == 0, p.stderr


def test_the_api_tests_alone_with_a_relative_data_dir():
    """`MICROGPT_DATA_DIR=../shared/data python -m pytest -q tests/test_api.py` as typed: that file
    changes directory before microgpt is first imported (the whole suite passed only because another
    test imported it earlier)."""
    env = dict(os.environ, PYTHONPATH=ROOT, MICROGPT_DATA_DIR=os.path.relpath(DATA_DIR, ROOT))
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_api.py"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stdout[-3000:]
    assert " passed" in p.stdout and "skipped" not in p.stdout  # (a names.txt not found skips)


def test_chat_asks_nothing_of_an_empty_line(tmp_path):
    run = tmp_path / "sft"
    shutil.copytree(os.path.join(FIXTURES, "sft"), run)
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-m", "microgpt", "chat", "--out", str(run)], input="\n   \n1+2\n",
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    replies = [line for line in p.stdout.split("> ")[1:] if line.strip()]
    assert len(replies) == 1, p.stdout  # the two empty lines asked nothing; "1+2" got one reply
    assert json.load(open(run / "checkpoint" / "state.json"))["step"] == 3  # (a chat writes nothing)


def test_a_chat_leaves_its_reply_room_by_dropping_the_oldest_turns(monkeypatch):
    """At block 16, a second question after a first exchange would leave the reply 1-3 tokens (the
    issue's `reverse emma` -> `rh`): the oldest exchange gives way so a quarter of the context is left."""
    from microgpt.stages import chat
    tok = checkpoint.load(os.path.join(FIXTURES, "sft")).tokenizer
    asked = []

    def replies(model, tokenizer, block_size, prompts, rng, *args, **kwargs):
        asked.append(len(prompts[0]))
        return [tokenizer.encode("579")]

    monkeypatch.setattr(chat, "replies", replies)
    session = chat.ChatSession(None, tok, 16, None)
    session.say("12+34")                  # 3 + 7 tokens: room to spare
    session.say("56+78")                  # with the first exchange it would be 20 tokens: that one gives way
    assert asked[1] <= 16 - 4 and len(session.messages) == 4
