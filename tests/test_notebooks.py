"""The notebooks (notebooks/*.ipynb) are committed without outputs: a learner's first run is the only one
they see, diffs show code, not images. notebooks/run.py executes them (a step of .ci/run of its own, after
this suite); here only what needs no kernel: valid notebooks, no outputs, and a check of numbers for each."""

import glob
import importlib.util
import json
import os

from helpers import ROOT

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def runner():
    spec = importlib.util.spec_from_file_location("notebooks_run", os.path.join(ROOT, "notebooks", "run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_the_notebooks_of_the_road():
    names = [os.path.basename(p) for p in NOTEBOOKS]
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(1, len(names) + 1)], names
    assert len(names) >= 4


def test_notebooks_are_committed_without_outputs():
    dirty = []
    for path in NOTEBOOKS:
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
        assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3", path
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
                dirty.append(f"{os.path.basename(path)} cell {i}")
    assert not dirty, f"clear the outputs before committing (Jupyter: Edit > Clear Outputs of All Cells): {dirty}"


def test_notebooks_use_the_python_api_not_shell_cells():
    shell = []
    for path in NOTEBOOKS:
        with open(path, encoding="utf-8") as f:
            cells = json.load(f)["cells"]
        shell += [f"{os.path.basename(path)} cell {i}: {line.strip()}" for i, c in enumerate(cells)
                  if c["cell_type"] == "code" for line in "".join(c["source"]).split("\n")
                  if line.lstrip().startswith(("!", "%"))]
    assert not shell, shell


def test_every_notebook_has_its_numbers_checked():
    checks = runner().CHECKS
    assert sorted(checks) == sorted(os.path.basename(p)[:-len(".ipynb")] for p in NOTEBOOKS)
    assert all(checks.values())


def test_a_check_fails_when_the_number_is_not_printed():
    run = runner()
    text = "step 1000 / 1000 | loss 2.6497 | val 2.4148\nfirst five: kamon, ann, karai, jaire, vialan\n" \
           "hand == backward: True\nlargest relative difference: 3.0e-07\n"
    assert run.check("01-the-seed", text) == []
    assert len(run.check("01-the-seed", text.replace("2.6497", "2.6498"))) == 1
    assert len(run.check("01-the-seed", text.replace("3.0e-07", "3.0e-02"))) == 1
