"""Stages hand off through checkpoints: run folders written before the redesign (0.2.0) open in
every command, config.json records the stage, every command reads a checkpoint once, and each
engine's dtypes (with their aliases) survive train -> sample -> resume."""

import json
import os
import shutil

import pytest
from helpers import assert_one_line_error, run_cli

from microgpt.checkpoint import read as checkpoint_read
from microgpt.cli import main

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "runs-0.2.0")
STAGE_OF = {"pretrain": "pretrain", "sft": "sft", "rl-chat": "rl", "rl-names": "rl"}
COMMAND_OF = {"pretrain": "train", "sft": "sft", "rl": "rl"}


def cli(*args):
    """microgpt ARGS in this process (so reads can be counted); its exit status (0 on success)."""
    try:
        main([str(a) for a in args])
    except SystemExit as e:
        return e.code or 0
    return 0


@pytest.fixture
def conversations(tmp_path):
    """The conversations the 0.2.0 sft run trained on (its README's command; single-turn, as then), here."""
    path = tmp_path / "add2.jsonl"
    assert cli("tasks", "make", "--task", "add:2", "--num", 40, "--multi-turn", 0, "--to", path) == 0
    return path


@pytest.mark.parametrize("name", sorted(STAGE_OF))
def test_a_run_saved_by_0_2_0_opens_in_every_command(name, tmp_path, conversations, names_path):
    run = tmp_path / name
    shutil.copytree(os.path.join(FIXTURES, name), run)
    if name == "sft":  # (the run recorded /tmp/add2.jsonl: the same file, made again, is given)
        data = ["--data", conversations]
    else:
        data = []
    chat = name in ("sft", "rl-chat")
    text = "1+2" if chat else "ava"
    commands = [["sample", "--out", run, "--num", 2, *data],
                ["eval", "--out", run, "--max-docs", 20, "--num", 20, *data], ["tokenize", text, "--out", run],
                ["attention", "--out", run, "--text", text], ["embeddings", "--out", run],
                ["report", "--out", run, "--num", 2, "--max-docs", 20]]
    if chat:
        commands.append(["chat", "--out", run, "--prompt", "1+2"])
    for args in commands:  # (in this process: an exception would fail the test with its traceback)
        assert cli(*args) == 0, args
    stage = STAGE_OF[name]
    step = json.load(open(run / "checkpoint" / "state.json"))["step"]
    p = run_cli(COMMAND_OF[stage], "--out", run, "--resume", "--steps", step + 1, "--quiet", *data)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    saved = json.load(open(run / "checkpoint" / "config.json"))
    assert saved["stage"] == stage and json.load(open(run / "checkpoint" / "state.json"))["step"] == step + 1


def test_a_resumed_run_continues_as_the_stage_that_made_it(tmp_path, conversations, names_path):
    run = tmp_path / "sft"
    shutil.copytree(os.path.join(FIXTURES, "sft"), run)
    # `train --resume` on a fine-tuned run: it goes on fine-tuning (on conversations), not pretraining
    assert cli("train", "--out", run, "--resume", "--steps", 4, "--data", conversations, "--quiet",
               "--num-samples", 0) == 0
    saved = json.load(open(run / "checkpoint" / "config.json"))
    assert saved["stage"] == "sft" and saved["train"]["data_mode"] == "chat"


@pytest.fixture
def counted_reads(monkeypatch):
    """{run folder: how many times its checkpoint was read} while the test runs."""
    reads = {}
    real = checkpoint_read._load

    def counting(run_dir, with_optimizer):
        key = os.path.basename(os.path.normpath(str(run_dir)))
        reads[key] = reads.get(key, 0) + 1
        return real(run_dir, with_optimizer)

    monkeypatch.setattr(checkpoint_read, "_load", counting)
    return reads


def test_each_command_reads_a_checkpoint_once(tmp_path, words, conversations, counted_reads):
    base = tmp_path / "base"
    tiny = ["--n-embd", 8, "--n-head", 2, "--eval-every", 0, "--quiet"]
    assert cli("train", "--data", words, "--steps", 2, "--out", base, *tiny, "--num-samples", 0) == 0
    assert counted_reads == {}
    for args, folder in ((["train", "--out", base, "--resume", "--steps", 3, "--quiet", "--num-samples", 0], "base"),
                         (["sample", "--out", base, "--num", 2], "base"),
                         (["eval", "--out", base, "--max-docs", 5], "base"),
                         (["sft", "--from", base, "--data", conversations, "--steps", 1, "--out", tmp_path / "sft",
                           "--quiet"], "base"),
                         (["rl", "--from", base, "--task", "names-ending:a", "--steps", 1, "--prompts", 2,
                           "--group-size", 2, "--eval-num", 2, "--out", tmp_path / "rl", "--quiet"], "base"),
                         (["sft", "--out", tmp_path / "sft", "--resume", "--steps", 2, "--quiet"], "sft"),
                         (["report", "--out", base, "--num", 2, "--max-docs", 5], "base")):
        counted_reads.clear()
        assert cli(*args) == 0, args
        assert counted_reads == {folder: 1}, (args, counted_reads)


ALIASES = {"numpy": {"float64": "float64", "fp64": "float64", "float32": "float32", "fp32": "float32"},
           "torch": {"float32": "float32", "fp32": "float32", "float64": "float64", "fp64": "float64"}}


@pytest.mark.parametrize("engine", sorted(ALIASES))
def test_every_dtype_alias_trains_samples_and_resumes(engine, tmp_path, words, capsys):
    pytest.importorskip(engine)
    for alias, name in ALIASES[engine].items():
        run = tmp_path / f"{engine}-{alias}"
        assert cli("train", "--engine", engine, "--dtype", alias, "--data", words, "--steps", 2, "--n-embd", 8,
                   "--n-head", 2, "--out", run, "--quiet", "--num-samples", 0) == 0
        assert json.load(open(run / "checkpoint" / "config.json"))["engine"]["dtype"] == name  # normalised
        assert cli("sample", "--out", run, "--num", 1) == 0
        assert cli("train", "--out", run, "--resume", "--steps", 3, "--quiet", "--num-samples", 0) == 0
        assert json.load(open(run / "checkpoint" / "state.json"))["step"] == 3
    if engine == "torch":  # bf16 (and its alias) needs a GPU: one line naming the fix, on the CPU
        for alias in ("bf16", "bfloat16"):
            p = run_cli("train", "--engine", "torch", "--dtype", alias, "--device", "cpu", "--data", words,
                        "--steps", 1, "--out", tmp_path / alias)
            assert_one_line_error(p, "needs --device cuda")
            assert not (tmp_path / alias).exists()
