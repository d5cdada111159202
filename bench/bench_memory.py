"""The numpy engine with glibc's malloc thresholds raised (microgpt/engines/numpy_engine/memory.py)
against glibc's defaults: training tokens/s of two models, each in a process of its own.

    names        the README's 200K-parameter names model (4 layers, n_embd 64, block 16, batch 32)
    shakespeare  bench_versus.py's tinyshakespeare side (2 layers, n_embd 128, BPE-512, block 64,
                 batch 24, nanochat + Muon): activations of 1-3 MB a step

Each figure is the median over rounds, the two settings interleaved within a round (shared
machines are noisy: compare the ratios). A setting trains `microgpt train ... --time-limit S` and
counts the tokens/s after its first logged steps (start-up and warm-up left out).

    MICROGPT_DATA_DIR=../shared/data python bench/bench_memory.py            # 3 rounds of 15 s, ~4 min
    ... --rounds 5 --seconds 30 --only shakespeare
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from bench_versus import MICROGPT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.environ.get("MICROGPT_DATA_DIR", "")
MODELS = {
    "names": ["--data", os.path.join(DATA, "names.txt"), "--engine", "numpy", "--dtype", "float32",
              "--n-layer", "4", "--n-embd", "64", "--n-head", "4", "--block-size", "16", "--batch-size", "32"],
    "shakespeare": ["--data", os.path.join(DATA, "tinyshakespeare.txt"), *MICROGPT["shakespeare-numpy"].split()],
}


def worker(model, tuned, seconds, out):
    """Train `model` for `seconds` with the thresholds raised (tuned) or glibc's defaults; print tok/s."""
    import microgpt.engines.numpy_engine.engine as engine
    from microgpt.cli import main as microgpt
    if not tuned:
        engine.keep_freed_memory = lambda: False  # (the engine calls it when it starts)
    microgpt(["train", *MODELS[model], "--steps", "1000000", "--time-limit", str(seconds), "--eval-every", "0",
              "--num-samples", "0", "--log-every", "10", "--quiet", "--out", out])
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f][2:]  # (from step 30 on: start-up and warm-up left out)
    print((rows[-1]["tokens"] - rows[0]["tokens"]) / (rows[-1]["elapsed"] - rows[0]["elapsed"]))


def measure(model, tuned, seconds):
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
        r = subprocess.run([sys.executable, __file__, "--worker", model, "--tuned", str(int(tuned)),
                            "--seconds", str(seconds), "--out", os.path.join(tmp, "run")],
                           capture_output=True, text=True, env=env)
        if r.returncode:
            sys.exit(f"error: the {model} worker failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
        return float(r.stdout.split()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="names,shakespeare", help="names, shakespeare or both (default)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    for hidden in ("--worker", "--tuned", "--out"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.tuned == "1", a.seconds, a.out)
    models = a.only.split(",")
    for m in models:
        if m not in MODELS:
            ap.error(f"--only {m}: unknown (names or shakespeare)")
        if not os.path.isfile(MODELS[m][1]):
            ap.error(f"{MODELS[m][1]} not found: set MICROGPT_DATA_DIR to the folder with names.txt and "
                     "tinyshakespeare.txt")
    results = {(m, tuned): [] for m in models for tuned in (False, True)}
    for r in range(a.rounds):
        for key in results:
            results[key].append(measure(*key, a.seconds))
        print(f"round {r + 1}: " + ", ".join(f"{m} {'raised' if t else 'glibc'} {v[-1]:,.0f}"
                                            for (m, t), v in results.items()), flush=True)
    print(f"\n{'model':<12} {'glibc defaults':>15} {'raised':>10} {'ratio':>6}   (tokens/s, median of {a.rounds})")
    for m in models:
        base, tuned = (statistics.median(results[m, t]) for t in (False, True))
        print(f"{m:<12} {base:>15,.0f} {tuned:>10,.0f} {tuned / base:>6.2f}")


if __name__ == "__main__":
    main()
