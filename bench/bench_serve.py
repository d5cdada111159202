"""`microgpt serve` under load: what the server costs over generating in process, and what 32 streams
at once get compared with one.

    MICROGPT_DATA_DIR=../shared/data python bench/bench_serve.py                 # ~2 minutes
    MICROGPT_DATA_DIR=../shared/data python bench/bench_serve.py --out runs/x    # a run of yours (base model)

Without --out it trains a small numpy run on continuous text (tinyshakespeare's first 50,000
characters, 2 layers, n_embd 64, 300 steps) in a temporary folder. The server runs as `microgpt
serve --port 0` in its own process; this one is the clients. Three ways to make the same greedy
tokens, alternating, median of repeats:
  in process   serve's own stepper (generation.Rows) called directly: the engine's speed;
  1 stream     one streaming /v1/completions request (SSE, every token with 5 logprobs);
  32 streams   32 such requests at once (the server's default: 8 generating, the rest queued):
               tokens per second over all of them, and the time to each stream's first token.
Each request is generated on its own (a batch of one; requests are not batched together), so
32 streams share the engine's speed rather than multiply it: the server's bounds are about
fairness and staying up, not throughput.
"""

import argparse
import http.client
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


def small_run(tmp):
    data_dir = os.environ.get("MICROGPT_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
    with open(os.path.join(data_dir, "tinyshakespeare.txt")) as f:
        text = f.read()[:50_000]
    path = os.path.join(tmp, "text.txt")
    with open(path, "w") as f:
        f.write(text)
    out = os.path.join(tmp, "run")
    subprocess.run([sys.executable, "-m", "microgpt", "train", "--out", out, "--data", path, "--data-mode", "stream",
                    "--engine", "numpy", "--n-layer", "2", "--n-embd", "64", "--n-head", "4", "--block-size", "64",
                    "--batch-size", "8", "--steps", "300", "--eval-every", "0", "--quiet", "--num-samples", "0"],
                   check=True, cwd=ROOT)
    return out


def stream(port, body):
    """(tokens, seconds to the first token, seconds in all) of one streaming request."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", json.dumps({**body, "stream": True}), {"Content-Type": "application/json"})
    r = conn.getresponse()
    tokens, first, buf = 0, None, b""
    while chunk := r.read1(65536):
        buf += chunk
        *events, buf = buf.split(b"\n\n")
        for e in events:
            choices = json.loads(e[6:])["choices"] if e.startswith(b"data: {") else []
            if choices and choices[0]["logprobs"]:  # a chunk with a token
                tokens += 1
                first = first or time.perf_counter() - t0
    conn.close()
    return tokens, first, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="a trained base run (default: a small one trained here)")
    ap.add_argument("--tokens", type=int, default=100, help="tokens per request (default 100)")
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    run = args.out or small_run(tmp)
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    server = subprocess.Popen([sys.executable, "-m", "microgpt", "serve", "--out", run, "--port", "0"],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        port = int(re.search(r"127\.0\.0\.1:(\d+)/ ", "".join(server.stdout.readline() for _ in range(2))).group(1))
        from microgpt.serve.generation import Rows
        from microgpt.serve.runs import open_served
        served = open_served(run, "bench")
        prompt = served.tokenizer.encode(served.tokenizer.decode([served.tokenizer.encode("T")[0]]))
        name = os.path.basename(os.path.abspath(run).rstrip(os.sep))
        body = {"model": name, "prompt": "T", "max_tokens": args.tokens, "temperature": 0, "logprobs": 5}

        def in_process():
            t0 = time.perf_counter()
            rows = Rows(served.model, [prompt], random.Random(0), served.block_size, args.tokens, 0.0,
                        slide=served.mode == "stream", top_logprobs=5)
            while not rows.done:
                rows.step()
            return len(rows.new[0]), time.perf_counter() - t0

        def many():
            results = [None] * args.streams
            t0 = time.perf_counter()
            threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, stream(port, body)))
                       for i in range(args.streams)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return results, time.perf_counter() - t0

        rates = {"in process": [], "1 stream": [], f"{args.streams} streams": []}
        firsts = []
        for _ in range(args.repeats):
            n, s = in_process()
            rates["in process"].append(n / s)
            n, _, s = stream(port, body)
            rates["1 stream"].append(n / s)
            results, s = many()
            rates[f"{args.streams} streams"].append(sum(r[0] for r in results) / s)
            firsts += [r[1] for r in results]
        med = {k: statistics.median(v) for k, v in rates.items()}
        print(f"{served.engine} engine, {served.config.n_layer} layers, n_embd {served.config.n_embd}, "
              f"{args.tokens} tokens a request, median of {args.repeats}")
        for k, v in med.items():
            print(f"  {k:>12}: {v:8.0f} tokens/s")
        print(f"  server / in process: {med['1 stream'] / med['in process']:.2f}x;  "
              f"{args.streams} streams / 1 stream: {med[f'{args.streams} streams'] / med['1 stream']:.2f}x")
        firsts.sort()
        print(f"  first token of the {args.streams} streams: median {statistics.median(firsts):.3f} s, "
              f"slowest {firsts[-1]:.3f} s")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
