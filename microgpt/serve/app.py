"""The ASGI app: OpenAI's endpoints, the learners' page and the few JSON endpoints the page reads.

    GET  /                      the page (page.py)
    GET  /v1/models             the served runs; GET /v1/models/{id} one of them
    POST /v1/completions        base models: continue a prompt
    POST /v1/chat/completions   chat models: answer a conversation
    GET  /api/info              each run's size, kind and step, and the server's limits
    POST /api/attention         every layer's and head's attention over a text
    GET  /api/metrics           a run's metrics.jsonl rows from a given one on (the page polls it)

Every error is OpenAI's JSON body with its 4xx (5xx only for a fault of ours), and the server
goes on serving. Generation is continuous batching (scheduler.py: one loop per model, in a
thread of its own, steps every active row at once; the event loop only queues and streams). It is
bounded: at most `max_active` requests are being served at once (their rows in the batch, up
to `max_batch` rows and `max_cache_mb` of KV cache, the rest queued in arrival order), at most
`max_waiting` more wait for a turn, and beyond that a request is refused at once (429). A
request's slot is given back when its generation ends, fails, or its client goes away -- its
rows leave the batch before the next step, so a closed connection stops the work within one token.
"""

import functools
import hmac
import random
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.routing import Route

from microgpt.errors import MicroGPTError
from microgpt.serve import schema
from microgpt.serve.completions import Answer, Job
from microgpt.serve.events import EventStream, model_error, watching
from microgpt.serve.page import page_response
from microgpt.serve.scheduler import Scheduler
from microgpt.serve.schema import APIError, Limits, bad
from microgpt.serve.worker import ProcessScheduler


@dataclass
class Settings:
    api_key: str = None
    host: str = "127.0.0.1"  # the address listened on (on a loopback one, requests must name it)
    max_active: int = 32     # requests being served at once
    max_waiting: int = 64    # requests waiting for a turn; more are refused (429)
    max_batch: int = 32      # rows stepped together per model (a request's n choices of a chat are n rows)
    max_cache_mb: float = 1024  # KV-cache memory per model (rows x 2 x n_layer x block_size x n_embd x 8 bytes)
    model_process: bool = False  # each model steps in a process of its own (serve/worker.py)
    limits: Limits = field(default_factory=Limits)
    reload_every: float = 1.0  # seconds between looks at the checkpoints (with reload)


class Slots:
    """At most `active` holders at once and `waiting` in line; -> 429 beyond."""

    def __init__(self, active, waiting):
        self.sem, self.max_waiting, self.waiting, self.active = anyio.Semaphore(active), waiting, 0, 0

    async def acquire(self):
        try:
            self.sem.acquire_nowait()  # (a slot given back goes to the first waiter: no one jumps the line)
        except anyio.WouldBlock:
            if self.waiting >= self.max_waiting:
                raise APIError(429, f"the server is busy ({self.active} requests generating, {self.waiting} "
                               f"waiting): try again shortly", code="server_busy", type="server_busy") from None
            self.waiting += 1
            try:
                await self.sem.acquire()
            finally:
                self.waiting -= 1
        self.active += 1

    def release(self):
        self.active -= 1
        self.sem.release()


def error_response(e):
    return JSONResponse(e.body(), status_code=e.status)


def build_app(runs, settings=None):
    """The Starlette app serving `runs` (a runs.Runs)."""
    settings = settings or Settings()
    loopback = is_loopback(settings.host)
    slots = Slots(settings.max_active, settings.max_waiting)
    limiter = anyio.CapacityLimiter(settings.max_active)  # worker threads for the page's attention maps

    def scheduler(s):
        """The scheduler of a Served (made at its first request; a reloaded run is a new Served)."""
        if s.scheduler is None:
            cache = int(settings.max_cache_mb * 2 ** 20)
            s.scheduler = ProcessScheduler(s, settings.max_batch, cache, runs.engine) if settings.model_process \
                else Scheduler(s, settings.max_batch, cache)
            if s.retired:  # (a reload replaced it meanwhile: a request that began before asks for it)
                s.scheduler.retire()
        return s.scheduler

    if settings.model_process:  # (the model processes start loading now, not at the first request)
        for s in runs:
            scheduler(s)

    def served(name):
        if not isinstance(name, str) or not name:
            raise bad("model is required: the id of a served model (GET /v1/models lists them)", "model",
                      "missing_model")
        got = runs.get(name)
        if got is None:
            raise APIError(404, f"the model {name!r} does not exist: this server has {', '.join(runs.by_name)}",
                           "model", "model_not_found")
        return got

    def authorized(request):
        if not settings.api_key:
            return
        given = request.headers.get("authorization", "")
        key = given[7:] if given.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(key.encode(), settings.api_key.encode()):
            raise APIError(401, "a missing or wrong API key: send the server's --api-key as "
                           "'Authorization: Bearer KEY'", code="invalid_api_key")

    def checked(request):
        """Refuse what a web page on another site could make a browser send here: a POST without a JSON
        body type (a cross-site form; JSON makes the browser ask first, and we never allow it), and, on a
        loopback address, a Host that is not this machine (a DNS-rebinding page reading the answers)."""
        if loopback:
            host = host_name(request.headers.get("host", ""))
            if not is_loopback(host):
                raise APIError(403, f"the Host header {host!r} is not this machine: call the server as 127.0.0.1 or "
                               f"localhost (or bind it with --host)", code="forbidden_host")
        if request.method == "POST" and not request.headers.get("content-type", "").startswith("application/json"):
            raise APIError(415, "send the body as JSON, with 'Content-Type: application/json'",
                           code="unsupported_media_type")

    def endpoint(fn):
        async def handle(request):
            try:
                checked(request)
                authorized(request)
                return await fn(request)
            except APIError as e:
                return error_response(e)
            except MicroGPTError as e:
                return error_response(model_error(e))
        return handle

    async def completions(request, parse):
        req = parse(schema.parse_body(await request.body()), settings.limits)
        job = Job(served(req.model), req, settings.limits)
        await slots.acquire()
        if req.sampling.stream:
            return EventStream(job, slots, scheduler(job.served))
        try:
            answer = Answer(job)

            async def collect():
                async for events in job.events(scheduler(job.served)):
                    for event in events:
                        answer.add(event)
                return answer.response()
            body = await watching(request.receive, collect)
        finally:
            slots.release()
        return JSONResponse(body if body is not None else {})

    async def chat(request):
        return await completions(request, schema.chat_request)

    async def complete(request):
        return await completions(request, schema.completion_request)

    def model_card(s):
        return {"id": s.name, "object": "model", "created": s.created, "owned_by": "microgpt", "microgpt": s.info()}

    async def models(request):
        return JSONResponse({"object": "list", "data": [model_card(s) for s in runs]})

    async def model(request):
        return JSONResponse(model_card(served(request.path_params["name"])))

    async def info(request):
        from microgpt import __version__
        return JSONResponse({"version": __version__, "models": [s.info() for s in runs],
                             "limits": vars(settings.limits), "auth": bool(settings.api_key)})

    async def attention(request):
        from microgpt.serve.inside import attention_of
        body = schema.parse_body(await request.body())
        s = served(body.get("model"))
        return JSONResponse(await anyio.to_thread.run_sync(attention_of, s, body, limiter=limiter))

    async def metrics(request):
        from microgpt.serve.inside import metrics_since
        s = served(request.query_params.get("model"))
        since = request.query_params.get("since", "0")
        if not since.isdigit():
            raise bad(f"since must be a whole number >= 0, not {since!r}", "since")
        return JSONResponse(await anyio.to_thread.run_sync(metrics_since, s.path, int(since)))

    async def page(request):
        return page_response()

    async def http_error(request, exc):
        message = {404: f"no such endpoint: {request.url.path}",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, exc.detail)
        return error_response(APIError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None))

    async def fault(request, exc):
        return error_response(APIError(500, f"internal error ({type(exc).__name__}): the request was not completed",
                                       type="server_error"))

    @asynccontextmanager
    async def lifespan(app):
        async with anyio.create_task_group() as tg:
            async def watch_checkpoints():
                while True:
                    await anyio.sleep(settings.reload_every * (0.9 + 0.2 * random.random()))
                    await anyio.to_thread.run_sync(runs.refresh, 0.0)
            if runs.reload:
                tg.start_soon(watch_checkpoints)
            yield
            tg.cancel_scope.cancel()
        for s in runs:  # (model processes stop: their stdin closes)
            s.retire()

    routes = [Route("/", page), Route("/v1/models", endpoint(models)), Route("/v1/models/{name:path}", endpoint(model)),
              Route("/v1/completions", endpoint(complete), methods=["POST"]),
              Route("/v1/chat/completions", endpoint(chat), methods=["POST"]),
              Route("/api/info", endpoint(info)), Route("/api/attention", endpoint(attention), methods=["POST"]),
              Route("/api/metrics", endpoint(metrics))]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: fault}, lifespan=lifespan)
    app.state.slots, app.state.runs = slots, runs
    return app


def host_name(header):
    """The name in a Host header, without its port: "[::1]:80" -> "::1", "localhost:8000" -> "localhost"."""
    if header.startswith("["):
        return header[1:].split("]")[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


@functools.lru_cache(maxsize=64)  # (asked at every request: parsing an address was 1% of a short one's time)
def is_loopback(host):
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
