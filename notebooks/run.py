"""Run every notebook top to bottom in a fresh kernel, as CI does, and check the numbers that matter.

    pip install '.[notebooks]'
    MICROGPT_DATA_DIR=../shared/data python notebooks/run.py                 # all of them (~4-8 min)
    MICROGPT_DATA_DIR=../shared/data python notebooks/run.py 01 03 --executed runs/nb   # some; keep the results

Why nbclient and not nbmake: nbmake is a pytest plugin that runs notebooks through nbclient and passes
when no cell raises. Here the cells' printed figures are checked too (the seed's step-1000 loss 2.6497,
the engines' equal losses, pass@1 rising under RL), which needs the executed notebook in hand, and the
notebooks are a step of their own in .ci/run, outside the test suite's 5-minute budget; nbclient, the
library nbmake is built on, gives both with no plugin between. Each notebook gets a new kernel, runs
with notebooks/ as its working directory (as when a learner opens it), and is never written back: the
committed files stay without outputs (tests/test_notebooks.py checks that), and a notebook that leaves a
file behind in notebooks/ fails (they write under temporary folders only).
"""

import argparse
import glob
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUDGET_S = 120  # what a notebook may take on one CPU core (a line says so when one takes longer)


# notebook -> [(what, pattern, test)]: the pattern must occur in the notebook's text outputs and, where a
# test is given, hold for its matches: a list with, for each match, the floats of its groups
CHECKS = {
    "01-the-seed": [
        ("hand-derived gradients equal backward()", r"hand == backward: True", None),
        ("the GPT's gradient equals the finite difference", r"largest relative difference: (\S+)",
         lambda m: m[0][0] < 1e-5),
        ("the seed's step-1000 loss", r"step 1000 / 1000 \| loss 2\.6497 \| val 2\.4148", None),
        ("the seed's first samples", r"first five: kamon, ann, karai, jaire, vialan", None),
    ],
    "02-the-ladder": [
        ("the four rungs' losses equal step for step", r"engines equal: True", None),
        ("the array engines each give the seed's run",
         r"step 1000 loss (2\.6497) \| val 2\.4148 .*kamon, ann, karai, jaire, vialan", lambda m: len(m) == 2),
    ],
    "03-tokenizer": [
        ("the fast BPE learner's merges equal the textbook loop's", r"same merges: True", None),
        ("BPE decodes what it encodes", r"decodes back: True", None),
        ("BPE-512 tokens carry ~2 bytes of held-out text", r"BPE-512 +512 +[\d,]+ +(\d+\.\d+)\n",
         lambda m: 1.9 < m[0][0] < 2.1),
        ("per byte, BPE-512 beats characters", r"bits per byte: characters (\S+), BPE-512 (\S+),",
         lambda m: m[0][1] < m[0][0]),
    ],
    "04-todays-gpt": [
        ("rope: the score depends on the distance only", r"same distance, same score: True", None),
        ("Newton-Schulz brings the singular values together", r"after newton_schulz\(G\): .*smallest (\S+)\)",
         lambda m: m[0][0] < 2),
        ("each configuration trained, the modern parts below the seed at 300 steps",
         r"val losses: " + ", ".join([r"(\d+\.\d+)"] * 6), lambda m: all(v < m[0][0] for v in m[0][1:])),
    ],
    "05-assistant": [
        ("RL raises held-out pass@1 above SFT's", r"after SFT (\S+) -> after RL (\S+)",
         lambda m: m[0][1] >= m[0][0] + 0.05),
        ("a chat of four questions", r"> \d+\+\d+\n\d+ +\((?:right|wrong)", None),
    ],
    "06-elsewhere": [
        ("transformers' tokenizer gives microgpt's ids", r"the same token ids: True", None),
        ("transformers' logits equal microgpt's (float32)", r"largest \|logit difference\|: (\S+)",
         lambda m: m[0][0] < 1e-4),
        ("transformers' greedy answers equal microgpt's", r"same: True", lambda m: len(m) == 3),
        ("the server serves the run, answers as microgpt does, and stops",
         r"(?s)served models: \['add'\].*the server's answer is microgpt's: True.*server stopped: True", None),
    ],
}


def matches(pattern, text):
    """Every match of `pattern` in `text`, as a tuple of its groups' floats (() without groups)."""
    found = []
    for m in re.finditer(pattern, text):
        found.append(tuple(float(g) for g in m.groups()))
    return found


def outputs_text(nb):
    """Everything the code cells printed or displayed as text, in order."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            elif "data" in out and "text/plain" in out["data"]:
                parts.append(out["data"]["text/plain"])
    return "\n".join(parts)


def check(name, text):
    """The failed checks of a notebook's outputs, as lines."""
    failed = []
    for what, pattern, test in CHECKS.get(name, []):
        found = matches(pattern, text) if test else [()] * bool(re.search(pattern, text))
        if not found:
            failed.append(f"{what}: /{pattern}/ not in the outputs")
        elif test and not test(found):
            failed.append(f"{what}: {found} fails its check")
    return failed


def files_under(folder):
    """Every file path under `folder` (what a notebook might leave behind in the checkout)."""
    return {os.path.join(d, f) for d, _, files in os.walk(folder) for f in files}


def run_one(path, timeout):
    """(the executed notebook, seconds, the error or None): a fresh kernel, notebooks/ as its folder."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": HERE}})
    t0 = time.perf_counter()
    try:
        client.execute()  # (the kernel is shut down and waited for at the end, so its CPU time is counted)
    except Exception as e:  # CellExecutionError (the cell and its traceback), a timeout, a dead kernel
        return nb, time.perf_counter() - t0, e
    return nb, time.perf_counter() - t0, None


def children_cpu():
    """CPU seconds of the finished child processes (the kernels): on a busy machine the wall time of a
    notebook says little, its CPU time about what it takes on a core of its own."""
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="notebook name prefixes (01 02 ...); default all")
    ap.add_argument("--timeout", type=int, default=600, help="seconds a cell may take (default 600)")
    ap.add_argument("--executed", metavar="DIR", help="also write each executed notebook, outputs and all, into DIR")
    args = ap.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(HERE, "*.ipynb")))
    paths = [p for p in paths if not args.only or any(os.path.basename(p).startswith(o) for o in args.only)]
    if not paths:
        sys.exit("error: no notebook matches: give prefixes such as 01 02")
    if os.environ.get("MICROGPT_DATA_DIR"):  # relative to where this was started, not to the kernels' notebooks/
        os.environ["MICROGPT_DATA_DIR"] = os.path.abspath(os.environ["MICROGPT_DATA_DIR"])
    failures, times, cpu = [], {}, {}
    for path in paths:
        name = os.path.basename(path)[:-len(".ipynb")]
        print(f"{name}: running ...", flush=True)
        before, cpu0 = files_under(HERE), children_cpu()
        nb, seconds, error = run_one(path, args.timeout)
        cpu[name] = children_cpu() - cpu0
        left = sorted(files_under(HERE) - before)
        if left:  # a notebook writes under a temporary folder only
            failures.append(f"{name}: left files in the checkout: {', '.join(os.path.relpath(p, HERE) for p in left)}")
            print(failures[-1], flush=True)
        if args.executed:
            import nbformat
            os.makedirs(args.executed, exist_ok=True)
            nbformat.write(nb, os.path.join(args.executed, name + ".ipynb"))
        if error is not None:
            failures.append(f"{name}: {type(error).__name__} (above)")
            print(f"{name}: FAILED after {seconds:.1f} s: {error}", flush=True)
            continue
        times[name] = seconds
        failed = check(name, outputs_text(nb))
        failures += [f"{name}: {f}" for f in failed]
        slow = f" (over the {BUDGET_S} s a notebook should take)" if min(times[name], cpu[name]) > BUDGET_S else ""
        print(f"{name}: {times[name]:.1f} s ({cpu[name]:.1f} s of CPU), "
              f"{len(CHECKS.get(name, [])) - len(failed)} checks passed"
              + "".join(f"\n  FAILED {f}" for f in failed) + slow, flush=True)
    print(f"{len(times)} notebooks ran in {sum(times.values()):.1f} s ({sum(cpu.values()):.1f} s of CPU)")
    failed_names = {f.split(":")[0] for f in failures}
    print(f"notebooks: {len(paths) - len(failed_names)} passed, {len(failed_names)} failed")  # (CI's closing line)
    if failures:
        sys.exit("notebooks failed:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
