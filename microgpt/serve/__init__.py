"""`microgpt serve`: trained runs behind an OpenAI-compatible API, and a page where learners watch
the model think (tokens with their probabilities, the alternatives, attention, the training).

    microgpt serve --out runs/names [--out runs/chat] [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--reload]
                   [--max-batch 32] [--max-cache-mb 1024] [--model-process]

Why Starlette + uvicorn, not FastAPI: the API is six routes whose bodies we check by hand
anyway, to give OpenAI's error body with our one-line messages and to refuse what a tiny model
cannot do; FastAPI would add pydantic (a compiled dependency) and its own 422 error shape for
what is here a 400 with a named field, and its OpenAPI pages are not what learners come for.
Starlette (pure Python, on anyio) is the ASGI toolkit FastAPI itself is built on, and uvicorn
the usual server for it: `pip install 'microgpt[serve]'`. The extra also brings what uvicorn's own
"standard" install would for speed, httptools (its HTTP parser in C) and uvloop (its event loop in
C), and orjson for the stream chunks (serve/jsonbytes.py): on this 2-core machine they took 32
concurrent names-sized streams from 4,309 to 5,488 tokens/s and shakespeare-sized ones from 9,325
to 10,053 (`bench/bench_serve.py --engines numpy --no-hf`, run without them and with them). Without
them (PyPy; Windows for uvloop) the same server runs on the pure-Python parts.

Layout: runs.py opens the runs (the one call into the run API) and reloads them; schema.py checks
requests; scheduler.py steps every request's rows in one batch (microgpt.generate.Rows:
continuous batching), in a thread or, with --model-process, in a process of its own (worker.py);
generation.py turns a row's tokens into text; completions.py turns a
request into choices and OpenAI's responses and stream chunks, events.py streams them;
inside.py computes what the page shows beside the text; page.py + page.html are the page;
app.py wires the routes, the limits and the errors.
"""

import sys

from microgpt.errors import MicroGPTError

EXTRA = "pip install 'microgpt[serve]'"


def require_extra():
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MicroGPTError(f"microgpt serve needs starlette and uvicorn: {EXTRA}") from None


def bind(host, port):
    """A listening socket on host:port (port 0: any free one)."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        family, kind, proto, _, addr = infos[0]
        # (the protocol named, not 0: asyncio turns Nagle's algorithm off -- TCP_NODELAY -- only on sockets
        # that say they are TCP; with it on, each small write of a stream on a kept-alive connection waited
        # for the client's delayed ACK, ~40 ms)
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        raise MicroGPTError(f"cannot listen on {host}:{port} ({e.strerror or e}): choose another --port or "
                            f"--host") from None
    sock.setblocking(False)
    return sock


def serve(outs, host="127.0.0.1", port=8000, api_key=None, reload=False, engine=None, settings=None, max_batch=32,
          max_cache_mb=1024, model_process=False):
    """Open the runs in `outs`, then serve them until Ctrl-C."""
    require_extra()
    if not 0 <= port <= 65535:
        raise MicroGPTError(f"--port {port}: use a port from 1 to 65535 (0: any free one)")
    import uvicorn

    from microgpt.serve.app import Settings, build_app, is_loopback
    from microgpt.serve.runs import Runs
    runs = Runs(outs, engine=engine, reload=reload, log=lambda m: print(m, file=sys.stderr, flush=True))
    settings = settings or Settings()
    settings.api_key, settings.host = api_key, host
    settings.max_batch, settings.max_cache_mb, settings.model_process = max_batch, max_cache_mb, model_process
    app = build_app(runs, settings)
    sock = bind(host, port)
    port = sock.getsockname()[1]
    if not is_loopback(host) and not api_key:
        print(f"warning: listening on {host} without --api-key: anyone who can reach this machine can use the "
              f"models", file=sys.stderr, flush=True)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    for s in runs:
        print(f"serving {s.name} ({'chat' if s.chat else 'base'} model, step {s.step}, {s.engine} engine)")
    print(f"page: {url}/  OpenAI API: {url}/v1" + ("  (reloading new checkpoints)" if reload else ""), flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3,
                            lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
