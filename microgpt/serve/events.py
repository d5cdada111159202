"""A request's answer as it is made: server-sent events streamed while the client stays, and
`watching`, which stops the work the moment the client goes away."""

import asyncio

from microgpt.errors import MicroGPTError
from microgpt.serve.completions import Answer
from microgpt.serve.jsonbytes import dumps
from microgpt.serve.schema import APIError


def model_error(e):
    """A MicroGPTError while answering (weights that give NaN, numpy missing for attention)."""
    return APIError(422, str(e), code="model_error")


def sse(obj):
    return b"data: " + dumps(obj) + b"\n\n"


async def watching(receive, work):
    """Run `work()` until it ends or the client disconnects (then it is cancelled): -> its result or None.

    Two plain asyncio tasks (uvicorn runs asyncio): an anyio task group did the same at ~3x the cost,
    a fifth of a short request's time on the server (py-spy, names-sized requests)."""
    task, gone = asyncio.ensure_future(work()), False

    async def watch():
        nonlocal gone
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()
    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if gone:  # the client went away (else the server is stopping: that goes on up)
            return None
        raise
    finally:
        watcher.cancel()


class EventStream:
    """A server-sent-event response of a job; gives its slot back however it ends."""

    def __init__(self, job, slots, scheduler):
        self.job, self.slots, self.scheduler = job, slots, scheduler

    async def __call__(self, scope, receive, send):
        answer = Answer(self.job)

        async def stream():
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream; charset=utf-8"),
                                    (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]})
            events = self.job.events(self.scheduler)
            tail, body = b"", b""
            try:
                async for batch in events:
                    body += answer.stream(batch)
                    if body and not self.job.ready():  # (tokens that came together go out in one write)
                        await send({"type": "http.response.body", "more_body": True, "body": body})
                        body = b""
                if self.job.s.include_usage:
                    tail = sse(answer.usage_chunk())
            except MicroGPTError as e:  # the status is sent already: the error goes in the stream, as OpenAI's do
                tail = sse(model_error(e).body())
            finally:
                await events.aclose()
            await send({"type": "http.response.body", "body": body + tail + b"data: [DONE]\n\n", "more_body": False})

        try:
            await watching(receive, stream)
        except OSError:  # the client went away while we wrote
            pass
        finally:
            self.slots.release()
