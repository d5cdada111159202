"""The README and docs/ cannot drift from the command line: every `microgpt ...` command in their
shell blocks and in the README's road parses with the real parser (its sub-command and every flag
exist and take the values written), a command named in the text (`microgpt sample --temperature 0`)
names flags that exist, and every relative link leads to a file (and a heading) that exists."""

import argparse
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


def microgpt_args(words):
    """The arguments of `microgpt ARGS` or `[VAR=value ...] python|torchrun ... -m microgpt ARGS`; None otherwise."""
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        words = words[1:]
    if words[:1] == ["microgpt"]:
        return words[1:]
    if "-m" in words and words[words.index("-m") + 1:words.index("-m") + 2] == ["microgpt"]:
        return words[words.index("-m") + 2:]
    return None


def microgpt_commands():
    """Each documented command's arguments: the shell blocks of every page, and the README's road (the
    table's command column: each a whole command, as typed)."""
    found = []
    for path in DOCS:
        for line, words in shell_commands(path):
            if (args := microgpt_args(words)) is not None:
                found.append(pytest.param(args, id=f"{path}:{line}"))
    for line, span in road_commands():
        found.append(pytest.param(microgpt_args(shlex.split(span)), id=f"README.md:{line}"))
    return found


def road_commands():
    """(line, command) of each code span in the second column of the README's tables."""
    found = []
    for k, row in enumerate(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().split("\n")):
        cells = row.split(" | ")
        if row.startswith("| ") and len(cells) >= 4:
            found += [(k + 1, span) for span in re.findall(r"`([^`]+)`", cells[1])
                      if microgpt_args(shlex.split(span)) is not None]
    return found


def named_commands():
    """`microgpt ...` code spans in the text of every page (outside code blocks and the road)."""
    found = []
    for path in DOCS:
        text = re.sub(r"```.*?```", lambda block: "\n" * block.group(0).count("\n"),  # (lines kept, to count)
                      open(os.path.join(ROOT, path), encoding="utf-8").read(), flags=re.S)
        for m in re.finditer(r"(?<!`)`([^`\n]+)`(?!`)", text):
            args = microgpt_args(shlex.split(m.group(1)))
            if args is not None:
                found.append(pytest.param(args, id=f"{path}:{text[:m.start()].count(chr(10)) + 1}:{m.group(1)}"))
    return found


def parse(args, parser):
    argv = args if args and not (args[0].startswith("-") and args[0] not in ("-h", "--help", "--version")) \
        else ["train", *args]
    if argv and argv[0] in ("-h", "--help", "--version"):
        return
    try:
        parsed = parser.parse_args(argv)
    except SystemExit as e:
        raise AssertionError(f"microgpt {' '.join(args)}: does not parse (exit {e.code})") from None
    assert parsed.command in COMMANDS


@pytest.mark.parametrize("args", microgpt_commands())
def test_a_documented_command_parses(args):
    parse(args, build_parser(__version__))


@pytest.mark.parametrize("args", named_commands())
def test_a_command_named_in_the_text_parses_but_for_what_it_leaves_out(args):
    """`microgpt sample --temperature 0` in a sentence: the command and its flags exist and take the values
    written; the required ones it does not repeat (--out) may be left out."""
    parser = build_parser(__version__)
    for sub in parser._subparsers._group_actions[0].choices.values():
        for action in sub._actions:
            action.required = False
        for nested in sub._actions:
            if isinstance(nested, argparse._SubParsersAction):
                for p in nested.choices.values():
                    for action in p._actions:
                        action.required = False
    parse(args, parser)


def test_the_readme_road_and_the_docs_document_commands():
    assert len(road_commands()) >= 10
    assert len([p for p in microgpt_commands() if p.id.startswith("docs/")]) >= 40


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("path", [d for d in DOCS if d == "README.md" or d.startswith("docs")])
def test_every_relative_link_leads_somewhere(path):
    text = open(os.path.join(ROOT, path), encoding="utf-8").read()
    for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"```.*?```", "", text, flags=re.S)):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(ROOT, os.path.dirname(path), file)) if file else os.path.join(ROOT, path)
        assert os.path.exists(full), f"{path}: the link {target} leads nowhere"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", open(full, encoding="utf-8").read(), re.M)
            assert anchor in [slug(h) for h in headings], f"{path}: no heading for #{anchor} in {file or path}"
