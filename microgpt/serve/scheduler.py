"""Continuous batching: one loop per served model runs every active row in one batched step.

The HTTP side only queues (`submit`) and reads what comes back; the loop owns the model's
`generate.Rows`. Between two steps it ends the rows whose requests asked it to (a stop string,
a client gone), admits waiting requests in arrival order while their rows fit (at most
max_batch rows, and at most max_cache_bytes of KV cache: each row holds 2 x n_layer x
block_size x n_embd numbers), then runs one step -- a prefill for each new row, one decode for
all others, one draw per row -- in a worker thread, so the event loop keeps serving, and hands
each token to its request. A request's rows join together and draw from its own random stream,
so what it gets does not depend on who else is served. A row's cache memory is given back the
moment the row ends; the loop stops when nothing is left and starts again with the next request.

A `Served` of a reloaded checkpoint is a new object with its own scheduler: new requests go to
it, the old one finishes the requests it has and stops.
"""

import collections
import math

import anyio

from microgpt.errors import MicroGPTError
from microgpt.generate import Rows


class Ticket:
    """One group of rows of a request: iterate it for (row index, token, logprob, top); then finish[b]."""

    def __init__(self, scheduler, prompts, rng, options):
        self.scheduler, self.prompts, self.rng, self.options = scheduler, prompts, rng, options
        self.rows, self.error = [], None
        self.send, self.receive = anyio.create_memory_object_stream(math.inf)
        self.dropped = set()  # row indices the request ended (no more of their tokens are handed on)

    @property
    def finish(self):
        return [r.finish for r in self.rows] if self.rows else [None] * len(self.prompts)

    def end(self, b, reason):
        """End row b before the next step (a stop string completed)."""
        self.dropped.add(b)
        self.scheduler.ends.append((self, b, reason))

    def cancel(self):
        """The request is gone: its rows end (or it leaves the queue) before the next step."""
        self.dropped.update(range(len(self.prompts)))
        self.scheduler.ends.append((self, None, "cancelled"))

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            try:
                event = await self.receive.receive()
            except anyio.EndOfStream:
                if self.error is not None:
                    raise self.error from None
                raise StopAsyncIteration from None
            if event[0] not in self.dropped:
                return event


class Scheduler:
    def __init__(self, served, task_group, max_batch=32, max_cache_bytes=1 << 30):
        self.served, self.tg = served, task_group
        c = served.config
        self.row_bytes = 2 * c.n_layer * c.block_size * c.n_embd * 8  # (float64; float32 holds half)
        self.max_rows = max(1, min(max_batch, max_cache_bytes // self.row_bytes))
        self.rows = None
        self.waiting, self.ends, self.live = collections.deque(), [], []
        self.running, self.steps = False, 0

    @property
    def active(self):
        return len(self.rows.active) if self.rows else 0

    @property
    def cache_bytes(self):
        return self.rows.cache.nbytes if self.rows else 0

    def submit(self, prompts, rng, **options):
        """Queue a group of rows (prompts continued together from one rng): -> its Ticket."""
        ticket = Ticket(self, prompts, rng, options)
        self.waiting.append(ticket)
        if not self.running:
            self.running = True
            self.tg.start_soon(self._loop)
        return ticket

    async def _loop(self):
        try:
            while True:
                self._end_rows()
                self._admit()
                if not self.live:  # (an idle scheduler admits every waiting group: nothing waits)
                    return
                try:
                    out = await anyio.to_thread.run_sync(self.rows.step)
                except MicroGPTError as e:  # (NaN weights): every request in the batch hears it
                    for t in self.live:
                        t.error = e
                        for r in t.rows:
                            self.rows.end(r, "error")
                    out = []
                self.steps += 1
                for row, token, logprob, top in out:
                    ticket, b = row.tag
                    ticket.send.send_nowait((b, token, logprob, top))
                self._close_done()
        finally:
            self.running, self.ends = False, []
            for t in list(self.live) + list(self.waiting):
                t.error = t.error or MicroGPTError("the server stopped generating this request")
                t.send.close()

    def _end_rows(self):
        ends, self.ends = self.ends, []
        for ticket, b, reason in ends:
            if ticket in self.waiting:
                self.waiting.remove(ticket)
                ticket.send.close()
            for i, row in enumerate(ticket.rows):
                if b is None or i == b:
                    self.rows.end(row, reason)
        self._close_done()

    def _admit(self):
        """Waiting groups join in arrival order while their rows fit (a group larger than the bound runs alone)."""
        while self.waiting:
            ticket = self.waiting[0]
            if self.live and self.active + len(ticket.prompts) > self.max_rows:
                return
            if self.rows is None or (not self.live and self.rows.model is not self.served.model):
                self.rows = Rows(self.served.model, self.served.block_size)  # (a model swapped in while idle)
            self.waiting.popleft()
            try:
                ticket.rows = [self.rows.add(p, ticket.rng, tag=(ticket, b), **ticket.options)
                               for b, p in enumerate(ticket.prompts)]
            except MicroGPTError as e:
                ticket.error = e
                ticket.send.close()
                continue
            self.live.append(ticket)
        self._close_done()

    def _close_done(self):
        for t in [t for t in self.live if all(r.finish is not None for r in t.rows)]:
            self.live.remove(t)
            t.send.close()
