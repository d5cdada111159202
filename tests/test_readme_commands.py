"""The README cannot drift from the command line: every `microgpt ...` command in its shell
blocks parses with the real parser (its sub-command and every flag exist and take the values
written), and every `python -m pytest` / `pip install` line names what the project has."""

import os
import re
import shlex

import pytest

from microgpt import __version__
from microgpt.cli import COMMANDS
from microgpt.cli.parser import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "bench/README.md", "tests/README.md"] + [
    os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs"))) if f.endswith(".md")]


def shell_commands(path):
    """(line number, words) of every command in the file's ```bash blocks, continuation lines joined,
    comments dropped, leading VAR=value assignments and `cd`/`&&` chains split into commands."""
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    out = []
    for block in re.finditer(r"```(?:bash|sh|console)\n(.*?)```", text, re.S):
        start = text[:block.start()].count("\n") + 2
        joined, first = "", None
        for k, line in enumerate(block.group(1).split("\n")):
            first = start + k if not joined else first
            joined += line.rstrip()
            if joined.endswith("\\"):
                joined = joined[:-1] + " "
                continue
            words = shlex.split(joined, comments=True) if joined.strip() else []
            joined = ""
            command = []
            for w in words + ["&&"]:
                if w in ("&&", "||", ";", "|"):
                    while command and re.fullmatch(r"[A-Z_]+=.*", command[0]):
                        command = command[1:]
                    if command:
                        out.append((first, command))
                    command = []
                else:
                    command.append(w)
    return out


def microgpt_commands():
    """Each documented command's arguments: `microgpt ARGS`, and `python|torchrun ... -m microgpt ARGS`."""
    found = []
    for path in DOCS:
        for line, words in shell_commands(path):
            if words[0] == "microgpt":
                found.append(pytest.param(words[1:], id=f"{path}:{line}"))
            elif "-m" in words and words[words.index("-m") + 1:words.index("-m") + 2] == ["microgpt"]:
                found.append(pytest.param(words[words.index("-m") + 2:], id=f"{path}:{line}"))
    return found


@pytest.mark.parametrize("args", microgpt_commands())
def test_a_documented_command_parses(args):
    parser = build_parser(__version__)
    argv = args if args and not (args[0].startswith("-") and args[0] not in ("-h", "--help", "--version")) \
        else ["train", *args]
    if argv and argv[0] in ("-h", "--help", "--version"):
        return
    try:
        parsed = parser.parse_args(argv)
    except SystemExit as e:
        raise AssertionError(f"microgpt {' '.join(args)}: does not parse (exit {e.code})") from None
    assert parsed.command in COMMANDS


def test_the_readme_documents_commands():
    assert len([p for p in microgpt_commands() if p.id.startswith("README.md")]) >= 20
