import os

import pytest

# The tests' matrices are tiny: a second BLAS/OpenMP thread only adds synchronisation, and on a
# busy 2-core CI machine (torchrun tests start two processes) it can make torch steps 5-50x slower.
# Set before numpy or torch start their thread pools; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from helpers import DATA_DIR, NAMES, SHARED_DATA, WORDS, run_cli

# Made absolute once, here, where the tests started: a test that changes directory before microgpt's
# data module is first imported would otherwise resolve a relative one (../shared/data) from there.
if "MICROGPT_DATA_DIR" in os.environ:
    os.environ["MICROGPT_DATA_DIR"] = DATA_DIR
elif os.path.isdir(SHARED_DATA):
    os.environ["MICROGPT_DATA_DIR"] = SHARED_DATA


@pytest.fixture(scope="session")
def names_path():
    if not os.path.exists(NAMES):
        pytest.skip("names.txt not found: set MICROGPT_DATA_DIR")
    return NAMES


@pytest.fixture(scope="session")
def reference_run_cli(tmp_path_factory, names_path):
    """`microgpt train` with no options (the python engine, fused graph): (run dir, stdout)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    p = run_cli("train", "--out", out, check=True)
    return out, p.stdout


@pytest.fixture(scope="session")
def words(tmp_path_factory):
    """The path of a data file of 22 names (helpers.WORDS)."""
    path = tmp_path_factory.mktemp("words") / "words.txt"
    path.write_text("\n".join(WORDS) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory, words):
    """The serve tests' runs (serving.make_runs), made once: none writes into them (a test that
    changes one copies it first)."""
    from serving import make_runs
    return make_runs(tmp_path_factory.mktemp("serve"), words)


@pytest.fixture(scope="module")
def server(serve_runs):
    """serve_runs served by a live uvicorn in this process, once per test module (serving.LiveServer)."""
    from serving import LiveServer
    s = LiveServer(list(serve_runs.values()))
    yield s
    s.close()
