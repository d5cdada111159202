"""The package's shape: no import cycle anywhere in microgpt/ (the layers themselves are
import-linter's contract in pyproject.toml, run by CI as `lint-imports`), files of one screenful
or a few, and a command line whose help names every command and no internal field names."""

import os
import subprocess
import sys

import pytest

PACKAGE = os.path.join(os.path.dirname(__file__), "..", "microgpt")


def test_no_import_cycle_in_the_package():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("microgpt")
    modules = sorted(graph.modules)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    state, stack = {}, []

    def visit(m):  # depth-first search: a module met again while still on the stack closes a cycle
        state[m] = "open"
        stack.append(m)
        for n in imports[m]:
            if state.get(n) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in modules:
        if m not in state:
            visit(m)


def test_every_package_file_is_at_most_300_lines():
    long = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    n = sum(1 for _ in f)
                if n > 300:
                    long.append(f"{os.path.relpath(os.path.join(folder, name), PACKAGE)} ({n})")
    assert not long, f"split by concept: {long}"


def _help(*args):
    return subprocess.run([sys.executable, "-m", "microgpt", *args, "--help"], capture_output=True, text=True,
                          check=True).stdout


def test_help_lists_every_command_and_no_internal_names():
    from microgpt.cli import COMMANDS
    top = _help()
    for command in COMMANDS:
        assert f"\n    {command}" in top, f"microgpt --help does not list {command}"
    for command in COMMANDS:
        text = _help(command) if command not in ("tasks", "tokenizer") else _help(command, "make" if command == "tasks"
                                                                                   else "train")
        assert "CFG." not in text and "cfg." not in text, f"microgpt {command} --help shows internal names"
