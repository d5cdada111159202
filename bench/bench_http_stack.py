"""What `microgpt serve` costs per request beside the HTTP stack it runs on: the server against a
probe of the same stack (uvicorn with httptools and uvloop, a Starlette route) that answers every
request with the very bytes the server answered (recorded once), in as many socket writes.

    MICROGPT_DATA_DIR=../shared/data python bench/bench_http_stack.py       # ~1 minute on 2 cores
    MICROGPT_DATA_DIR=../shared/data python bench/bench_http_stack.py --model-process --repeats 5

It trains the names-sized run of bench_serve.py (20 steps: speed does not depend on quality),
whose greedy answer is 14 tokens with 5 logprobs each: short requests, where what a server does
around the model decides its speed. Both servers run side by side, one BLAS thread; 32 kept-alive
connections each send requests one after another for a second (bench/sse_client.py), the two in turn,
median of repeats: requests per second and each server's CPU seconds a request (from /proc; with
--model-process, the model process's too). The probe's figure is the stack's own cost: the rest
of the server's is its own work (parsing and checking the request, scheduling, the model, the
chunks' JSON).
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench_serve import ONE_THREAD, ROOT, children, port_of, server_cpu, start_server, train
from sse_client import Conn, Response, many, request_bytes


def probe(port, answer_file):
    """Serve POST /v1/completions with the recorded answer: its head, then its chunks in the writes the
    server made (the answer file: {"headers": [[name, value]], "writes": [body bytes as latin-1]})."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route
    with open(answer_file) as f:
        answer = json.load(f)
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer["headers"]]
    writes = [w.encode("latin-1") for w in answer["writes"]]

    class Canned:
        async def __call__(self, scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for i, body in enumerate(writes):
                await send({"type": "http.response.body", "body": body, "more_body": i < len(writes) - 1})

    async def completions(request):
        json.loads(await request.body())
        return Canned()
    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def record(port, body):
    """The server's answer to one request, as its headers and the HTTP chunks it wrote (sse_client.Response)."""
    conn, got = Conn(port), Response(time.perf_counter())
    conn.send(request_bytes(port, body))
    while not got.done:
        got.feed(conn.sock.recv(1 << 16))
    conn.close()
    headers = [line.split(": ", 1) for line in got.head.split("\r\n")[1:]]
    return {"headers": [[k, v] for k, v in headers if k.lower() not in ("date", "server", "transfer-encoding")],
            "writes": [w.decode("latin-1") for w in got.chunks]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="each measure's length, at least (default 1)")
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--model-process", action="store_true", help="serve --model-process")
    ap.add_argument("--probe", nargs=2, metavar=("PORT", "ANSWER"), help=argparse.SUPPRESS)  # (the probe itself)
    args = ap.parse_args()
    if args.probe:
        return probe(int(args.probe[0]), args.probe[1])
    tmp = tempfile.mkdtemp()
    run = train(tmp, "names")
    body = json.dumps({"model": "names", "prompt": "a", "temperature": 0, "logprobs": 5, "stream": True}).encode()
    servers = {"microgpt serve": start_server(run, "numpy", args.streams, args.model_process)}
    try:
        ports = {"microgpt serve": port_of(servers["microgpt serve"])}
        answer = os.path.join(tmp, "answer.json")
        with open(answer, "w") as f:
            json.dump(record(ports["microgpt serve"], body), f)
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            probe_port = free.getsockname()[1]
        servers["the bare stack"] = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--probe", str(probe_port), answer],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT, **ONE_THREAD), cwd=ROOT)
        ports["the bare stack"] = probe_port
        conns = {k: [Conn(p) for _ in range(args.streams)] for k, p in ports.items()}
        deadline = time.monotonic() + 30
        while True:  # (the probe is listening once a request goes through)
            try:
                many(conns["the bare stack"][:1], body)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        rates, cpu = {k: [] for k in ports}, {k: [] for k in ports}
        for c in conns.values():
            many(c, body)  # (warm up)
        for _ in range(args.repeats):
            for k, c in conns.items():
                pids = [servers[k].pid] + children(servers[k].pid)
                before, results, seconds = [server_cpu(p) for p in pids], [], 0.0
                while seconds < args.seconds:  # (/proc counts CPU time in 10 ms ticks: a measure of 1 s or more)
                    got, s = many(c, body, 8)
                    results, seconds = results + got, seconds + s
                rates[k].append(len(results) / seconds)
                cpu[k].append(sum(server_cpu(p) - b for p, b in zip(pids, before)) / len(results))
        tokens = results[0][0]
        print(f"names-sized answers ({tokens} tokens, 5 logprobs each), {args.streams} streams, each sending 8 "
              f"requests in turn for {args.seconds} s, median of {args.repeats}"
              + (", serve --model-process" if args.model_process else ""))
        for k in ports:
            print(f"  {k:>15}: {statistics.median(rates[k]):7.0f} requests/s, {statistics.median(cpu[k]) * 1e3:.3f} ms "
                  f"of CPU a request (its processes)")
        ours, bare = (statistics.median(cpu[k]) for k in ports)
        print(f"  the server's own work: {(ours - bare) * 1e3:.3f} ms of CPU a request, {ours / bare:.1f}x the stack's")
    finally:
        for p in servers.values():
            p.terminate()
            p.wait(30)


if __name__ == "__main__":
    main()
