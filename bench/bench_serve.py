"""`microgpt serve` with continuous batching: 32 streams against one, the server against generating in
process, the time to the first token, a long prompt's prefill, and transformers' `generate`.

    MICROGPT_DATA_DIR=../shared/data python bench/bench_serve.py               # 30 s to 5 minutes on 2 cores
    MICROGPT_DATA_DIR=../shared/data python bench/bench_serve.py --engines numpy --repeats 1

It trains (a few steps: speed does not depend on quality) two numpy float32 runs in a temporary
folder: shakespeare-sized (tinyshakespeare, 4 layers, n_embd 128, block_size 512, continuous
text) and names-sized (names.txt, 4 layers, n_embd 64, block_size 16). Every process uses one
BLAS / torch thread (the 2-core machine is shared: threads that spin for a busy core stall a
step, bench/bench_threads.py), transformers' generate too. For each engine
(numpy float32; torch float32 on the CPU, or the GPU where there is one) the server runs as
`microgpt serve --port 0 --max-batch 32` in its own process; this one is the clients, 32 of them,
each on its own kept-alive connection (as the openai client keeps its connections: a student's
requests reuse one), all read in one thread (bench/sse_client.py: clients that cost the server's
2 cores as little as they can; their CPU seconds are printed beside the server's).
Greedy requests, every token with 5 logprobs, alternating, median of repeats:
  in process   generate.Rows stepped directly (one row): the engine's speed; and 32 rows, the
               ceiling for 32 streams (a step over 32 rows is not free: BLAS work grows with rows);
  1 stream     one streaming /v1/completions request after another, ONE_STREAM of them (one is ~40 ms:
               a single one moved by ±15% from repeat to repeat), each in turn with one row in process
               and each server's request (measured in blocks, the machine's drift moved the ratio);
  32 streams   32 connections, each sending EACH such requests one after another (its next when its
               last ends: 32 streams all along, not 32 that start together and then drain, which
               left the batch with fewer and fewer rows): tokens per second over all, each
               request's first token, and how busy the server process is meanwhile (CPU seconds per second, from /proc);
  model process  the same two against `serve --model-process` (the model steps in a process of its
               own, so the HTTP side and the model each have a core): both servers run side by side;
  long prompt  the first token after a 500-token prompt (max_tokens 1), against the old path:
               the same prompt fed one token per model call (generator().next_logits);
  HF           transformers' generate on the exported model (`microgpt export`), greedy, batch 1
               and batch 32, the same new tokens (ending at BOS in a names-like run, as our rows
               do), in each repeat beside ours, against 1 stream and 32 streams (and our rows in
               process: the engines alone).
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

from sse_client import Conn, many, stream

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
DATA = os.environ.get("MICROGPT_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
MODELS = {"shakespeare": ["--data", "tinyshakespeare.txt", "--data-mode", "stream", "--n-layer", "4", "--n-embd", "128",
                          "--n-head", "4", "--block-size", "512", "--batch-size", "4"],
          "names": ["--data", "names.txt", "--n-layer", "4", "--n-embd", "64", "--n-head", "4", "--batch-size", "32"]}


ONE_STREAM = 5  # requests one after another for the one-stream and one-row figures
EACH = 4  # requests one after another on each of the 32 connections

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def cli(*args):
    subprocess.run([sys.executable, "-m", "microgpt", *args], check=True, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=ROOT))


def train(tmp, name):
    out, args = os.path.join(tmp, name), list(MODELS[name])
    args[1] = os.path.join(DATA, args[1])
    cli("train", "--out", out, *args, "--engine", "numpy", "--dtype", "float32", "--steps", "20", "--eval-every", "0",
        "--quiet", "--num-samples", "0")
    return out


def server_cpu(pid):
    """The process's CPU seconds so far (user + system, all its threads), or None where /proc is not."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    """The child processes of pid (a --model-process server's model processes), where /proc says."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def start_server(run, engine, streams, model_process=False):
    """`microgpt serve` of run on a free port, one BLAS / torch thread (read its port with port_of)."""
    return subprocess.Popen(
        [sys.executable, "-m", "microgpt", "serve", "--out", run, "--port", "0", "--engine", engine, "--max-batch",
         str(streams)] + (["--model-process"] if model_process else []), stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", **ONE_THREAD), cwd=ROOT)


def port_of(server):
    """The port a started server says it listens on (its first two lines)."""
    return int(re.search(r"127\.0\.0\.1:(\d+)/ ", "".join(server.stdout.readline() for _ in range(2))).group(1))


def label(what, mode):
    return what if mode == "server process" else f"{what}, model process"


def hf_model(folder, device):
    import torch
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).to(device)


def hf_rate(model, ids, new, batch, stop):
    """Tokens per second of transformers' greedy generate, batch rows of the same prompt, ending at the
    stop token as our rows do (a names-like run's BOS: the stop token is not counted, as ours is not)."""
    import torch
    x = torch.tensor([ids] * batch, device=model.device)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=new,
                             eos_token_id=stop, pad_token_id=0 if stop is None else stop,
                             **({} if stop is not None else {"min_new_tokens": new}))
    seconds = time.perf_counter() - t0
    made = out[:, len(ids):]
    return int((made != stop).sum() if stop is not None else made.numel()) / seconds


def measure(run, engine, args, folder):
    from microgpt.generate import Rows
    from microgpt.serve.runs import open_served
    served = open_served(run, "bench", engine=engine)
    tok, bs = served.tokenizer, served.block_size
    docs = served.mode == "docs"
    prompt = [tok.BOS] + tok.encode("a") if docs else tok.encode("T")
    new = min(args.tokens, bs - len(prompt))
    name = os.path.basename(run)
    request = {"model": name, "prompt": "a" if docs else "T", "max_tokens": new, "temperature": 0, "logprobs": 5,
               "stream": True}
    body = json.dumps(request).encode()
    # the server's own process, or --model-process (the model in a second one)
    servers = {mode: start_server(run, engine, args.streams, mode == "model process") for mode in args.modes}
    try:
        ports = {mode: port_of(server) for mode, server in servers.items()}

        def in_process(n=1):
            """(tokens, seconds) of n rows stepped together to their end."""
            t0, rows = time.perf_counter(), Rows(served.model, bs)
            made = [rows.add(prompt, random.Random(0), new, 0.0, stop=(tok.BOS,) if docs else (), slide=not docs,
                             logprobs=True, top_logprobs=5) for _ in range(n)]
            while rows.active:
                rows.step()
            return sum(len(r.new) for r in made), time.perf_counter() - t0

        long = [random.Random(1).randrange(tok.vocab_size) for _ in range(500)] if bs > 500 else None

        def old_prefill():  # the old path: one model call per prompt token
            t0 = time.perf_counter()
            gen = served.model.generator(1)
            for p, t in enumerate(long):
                gen.next_logits([t], p)
            return time.perf_counter() - t0

        conns = {m: [Conn(p) for _ in range(args.streams)] for m, p in ports.items()}
        for c in conns.values():
            many(c, body)  # (warm up: every connection open, every model process loaded)
        rates = {"in process": [], "32 rows in process": []}
        hf, stop = None, tok.BOS if docs else None
        if folder:  # (measured in each repeat beside ours: the machine's speed drifts within minutes)
            import torch
            hf = hf_model(folder, "cuda" if engine == "torch" and torch.cuda.is_available() else "cpu")
            hf_rate(hf, prompt, new, args.streams, stop)  # (warm up)
        firsts, prefill, busy = {m: [] for m in conns}, {"old": [], "new": []}, {m: [] for m in conns}
        for _ in range(args.repeats):
            ones = {"in process": []}
            for _ in range(ONE_STREAM):  # (in turn, request by request: a ratio's two sides see the same machine)
                ones["in process"].append(in_process())
                for m, c in conns.items():
                    made, _, seconds = stream(c[0], body)
                    ones.setdefault(label("1 stream", m), []).append((made, seconds))
            for k, one in ones.items():
                rates.setdefault(k, []).append(sum(r[0] for r in one) / sum(r[1] for r in one))
            for m, c in conns.items():
                pids = [servers[m].pid] + children(servers[m].pid)
                cpu, mine = [server_cpu(p) for p in pids], time.process_time()
                results, s = many(c, body, EACH)
                if None not in cpu:  # (the server's processes, then the clients': this one)
                    busy[m].append([(server_cpu(p) - c0) / s for p, c0 in zip(pids, cpu)]
                                   + [(time.process_time() - mine) / s])
                rates.setdefault(label("32 streams", m), []).append(sum(r[0] for r in results) / s)
                firsts[m] += [r[1] for r in results]
            tokens, seconds = in_process(args.streams)
            rates["32 rows in process"].append(tokens / seconds)
            if hf is not None:
                for b in (1, args.streams):
                    rates.setdefault(f"transformers, batch {b}", []).append(hf_rate(hf, prompt, new, b, stop))
            if long:
                prefill["old"].append(old_prefill())
                ask = json.dumps({**request, "prompt": long, "max_tokens": 1}).encode()
                prefill["new"].append(stream(conns[args.modes[0]][0], ask)[1])
        med = {k: statistics.median(v) for k, v in rates.items()}
        c = served.config
        print(f"\n{name}: {served.engine} engine ({served.model.description}), {c.n_layer} layers, n_embd {c.n_embd}, "
              f"block_size {bs}, {made} tokens a request (at most {new}), median of {args.repeats}")
        for k, v in med.items():
            print(f"  {k:>28}: {v:8.0f} tokens/s")
        ceiling = med["32 rows in process"] / med["in process"]
        print(f"  in process {args.streams} rows / 1 row: {ceiling:.2f}x (the ceiling of {args.streams} streams / 1 "
              f"stream while one stream runs at the in-process rate)")
        for m in args.modes:
            one, several = med[label("1 stream", m)], med[label("32 streams", m)]
            print(f"  {m}: {args.streams} streams / 1 stream {several / one:.2f}x (target >= 8); 1 stream / in process "
                  f"{one / med['in process']:.2f}x (target >= 0.9); {args.streams} streams / {args.streams} rows in "
                  f"process {several / med['32 rows in process']:.2f}x")
            if busy[m]:  # (server about 1.0: bound by its one GIL; the machine has more cores)
                cores = [statistics.median(b) for b in zip(*busy[m])]
                print(f"    cores busy during {args.streams} streams (CPU seconds per second): server {cores[0]:.2f}"
                      + (f", model process {cores[1]:.2f}" if len(cores) > 2 else "") + f", clients {cores[-1]:.2f}")
            print(f"    first token at {args.streams} streams: median {statistics.median(firsts[m]):.3f} s (target <= "
                  f"0.3), slowest {max(firsts[m]):.3f} s")
        if long:
            old, now = statistics.median(prefill["old"]), statistics.median(prefill["new"])
            print(f"  500-token prompt, first token: {now:.3f} s, old path {old:.3f} s: {old / now:.1f}x "
                  f"(target >= 10)")
        if hf is not None:
            for b, key, rows in ((1, "1 stream", "in process"), (args.streams, "32 streams", "32 rows in process")):
                theirs = med[f"transformers, batch {b}"]
                print(f"  transformers generate, batch {b}: ours / theirs " + ", ".join(
                    f"{med[label(key, m)] / theirs:.2f}x ({m})" for m in args.modes) + " (target >= 1); "
                    f"{rows} / theirs {med[rows] / theirs:.2f}x")
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100, help="new tokens per request (default 100)")
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="numpy,torch", help="comma-separated (default numpy,torch)")
    ap.add_argument("--models", default="shakespeare,names", help="comma-separated (default shakespeare,names)")
    ap.add_argument("--no-hf", action="store_true", help="skip transformers' generate")
    ap.add_argument("--modes", default="server process,model process", type=lambda v: v.split(","),
                    help="the servers to measure: 'server process' (the model steps in the server's process, the "
                         "default of microgpt serve), 'model process' (serve --model-process); default both")
    args = ap.parse_args()
    os.environ.update(ONE_THREAD)
    if "torch" in args.engines or not args.no_hf:
        import torch
        torch.set_num_threads(1)
    tmp = tempfile.mkdtemp()
    for name in args.models.split(","):
        run = train(tmp, name)
        folder = None
        if not args.no_hf:
            folder = os.path.join(tmp, name + "-hf")
            cli("export", "--out", run, "--to", folder, "--no-eval")
        for engine in args.engines.split(","):
            measure(run, engine, args, folder if engine == args.engines.split(",")[0] or engine == "torch" else None)


if __name__ == "__main__":
    main()
