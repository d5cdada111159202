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


def test_benchmarks_and_examples_import_names_that_exist():
    """bench/ and examples/ are run by hand, not by the tests: a package change that moves a name
    they import (as the redesign did to bench_threads.py) fails here, not on the next reader."""
    import ast
    import glob
    import importlib.util
    root = os.path.join(os.path.dirname(__file__), "..")
    scripts = sorted(glob.glob(os.path.join(root, "bench", "*.py")) + glob.glob(os.path.join(root, "examples", "*.py")))
    missing = []
    for path in scripts:
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "microgpt":
                module = importlib.import_module(node.module)
                missing += [f"{os.path.basename(path)}: {node.module}.{a.name}" for a in node.names
                            if not hasattr(module, a.name)
                            and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
    assert not missing, missing
