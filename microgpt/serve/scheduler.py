"""Continuous batching: one loop per served model runs every active row in one batched step.

The HTTP side only queues (`submit`) and reads what comes back; the loop, in a thread of its own,
owns the model's `generate.Rows`. Between two steps it ends the rows whose requests asked it to
(a stop string, a client gone), admits waiting requests in arrival order while their rows fit
(at most max_batch rows, and at most max_cache_bytes of KV cache: each row holds 2 x n_layer x
block_size x n_embd numbers), then runs one step -- a prefill for each new row, one decode for
all others, one draw per row. A model call that blocks never blocks the server (the event loop
goes on answering). A request's rows join together and draw from its own random stream, so what
it gets does not depend on who else is served. A row's cache memory is given back the moment the
row ends; the thread stops when nothing is left and starts again with the next request.

Tokens reach their requests on the event loop in hand-overs, each at most STREAM_EVERY after the
token was drawn (a request's first token and its end go at once, without the others' tokens; every
token goes before a step that prefills), and the loop waits until the event loop has taken one
before it steps on. Both for speed, measured (bench/bench_serve.py): the two threads share one
GIL, so letting the event loop's Python run during a step only slows the step by more than it
saves (and, without the wait, a step that keeps the GIL can hold a first token back for tens of
ms), and a stream's socket write costs more than building its token's chunk, so several tokens a
write go out faster than one.

A `Served` of a reloaded checkpoint is a new object with its own scheduler: new requests go to
it, the old one finishes the requests it has and stops.
"""

import asyncio
import collections
import threading
import time

from microgpt.errors import MicroGPTError
from microgpt.generate import Rows


class Ticket:
    """One group of rows of a request: iterate it for lists of (row index, token, logprob, top) -- what
    came in one hand-over -- then read finish[b]."""

    def __init__(self, scheduler, prompts, rng, options):
        self.scheduler, self.prompts, self.rng, self.options = scheduler, prompts, rng, options
        self.rows, self.error = [], None
        # what the scheduler handed over and is not read yet (touched on the event loop only)
        self.events, self.closed, self.arrived = collections.deque(), False, asyncio.Event()
        self.dropped = set()  # row indices the request ended (their tokens still to come are skipped: Job.events)

    @property
    def finish(self):
        return [r.finish for r in self.rows] if self.rows else [None] * len(self.prompts)

    def end(self, b, reason):
        """End row b before the next step (a stop string completed)."""
        self.dropped.add(b)
        self.scheduler.ask_end(self, b, reason)

    def cancel(self):
        """The request is gone: its rows end (or it leaves the queue) before the next step."""
        self.dropped.update(range(len(self.prompts)))
        self.scheduler.ask_end(self, None, "cancelled")

    def __aiter__(self):
        return self

    async def __anext__(self):
        while True:
            if self.events:  # (all that came, taken at once: a stream writes them in one go)
                events, self.events = list(self.events), collections.deque()
                return events
            if self.closed:
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            self.arrived.clear()
            await self.arrived.wait()


STREAM_EVERY = 0.02  # seconds: the longest a drawn token waits to be handed over with the next steps' tokens
HAND_OVER_WAIT = 0.5  # seconds: the longest the loop waits for the event loop to take a hand-over


def hand_over(loop, events, closed):
    """Give tokens [((ticket, b), token, logprob, top)] and the tickets that ended to their requests, on the
    event loop, and wait (at most HAND_OVER_WAIT seconds) until the requests woken have written them."""
    taken = threading.Event()

    def deliver():
        for (ticket, b), token, logprob, top in events:
            ticket.events.append((b, token, logprob, top))
            ticket.arrived.set()
        for ticket in closed:
            ticket.closed = True
            ticket.arrived.set()
        loop.call_soon(taken.set)  # (after the requests woken above have run)
    if events or closed:
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # (the event loop closed: the server has stopped)
            return
        taken.wait(HAND_OVER_WAIT)


class Scheduler:
    def __init__(self, served, max_batch=32, max_cache_bytes=1 << 30):
        self.served = served
        c = served.config
        self.row_bytes = 2 * c.n_layer * c.block_size * c.n_embd * 8  # (float64; float32 holds half)
        self.max_rows = max(1, min(max_batch, max_cache_bytes // self.row_bytes))
        self.rows, self.loop = None, None
        self.lock = threading.Lock()  # guards waiting, ends and running (the event loop's side and the thread's)
        self.waiting, self.ends, self.live = collections.deque(), [], []
        self.running, self.steps = False, 0

    @property
    def active(self):
        return len(self.rows.active) if self.rows else 0

    @property
    def cache_bytes(self):
        return self.rows.cache.nbytes if self.rows else 0

    def submit(self, prompts, rng, **options):
        """Queue a group of rows (prompts continued together from one rng): -> its Ticket. (On the event loop.)"""
        ticket = Ticket(self, prompts, rng, options)
        self.loop = asyncio.get_running_loop()
        self.queue(ticket)
        return ticket

    def queue(self, group):
        """Add a group (a Ticket, or worker.Group in a model process) to the waiting line."""
        with self.lock:
            self.waiting.append(group)
            if not self.running:
                self.running = True
                threading.Thread(target=self._run, name=f"scheduler {self.served.name}", daemon=True).start()

    def retire(self):
        """A reload replaced this model: the thread stops by itself once its requests are done."""

    def ask_end(self, ticket, b, reason):
        with self.lock:
            self.ends.append((ticket, b, reason))

    def _run(self):
        closed, events, since = [], [], time.monotonic()
        try:
            while True:
                with self.lock:
                    closed += self._end_rows()
                    before = len(self.live)
                    closed += self._admit()
                    if not self.live:  # (an idle scheduler admits every waiting group: nothing waits)
                        self.running, self.ends = False, []
                        self._hand_over(events, closed)
                        return
                if len(self.live) > before and (events or closed):  # (a prefill may take long: nothing waits on it)
                    self._hand_over(events, closed)
                    closed, events, since = [], [], time.monotonic()
                try:
                    out = self.rows.step()
                except MicroGPTError as e:  # (NaN weights): every request in the batch hears it
                    for t in self.live:
                        t.error = e
                        for r in t.rows:
                            self.rows.end(r, "error")
                    out = []
                self.steps += 1
                closed += self._finished()
                events += [(row.tag, token, logprob, top) for row, token, logprob, top in out]
                now = time.monotonic()
                if now - since >= STREAM_EVERY:
                    self._hand_over(events, closed)
                    closed, events, since = [], [], now
                    continue
                # (at once: the requests whose first token came or that ended; the others' tokens keep waiting)
                urgent = {row.tag[0] for row, _, _, _ in out if len(row.new) == 1}.union(closed)
                if urgent:
                    self._hand_over([e for e in events if e[0][0] in urgent], closed)
                    closed, events = [], [e for e in events if e[0][0] not in urgent]
        except BaseException as e:  # (a fault of ours: no request is left waiting for ever)
            with self.lock:
                self.running = False
                left = self.live + list(self.waiting)
                self.live, self.waiting = [], collections.deque()
            for t in left:
                t.error = t.error or MicroGPTError(f"generation failed ({type(e).__name__}: {e})")
            self._hand_over(events, closed + left)
            raise

    def _hand_over(self, events, closed):
        hand_over(self.loop, events, closed)

    def _end_rows(self):
        ends, self.ends, closed = self.ends, [], []
        for ticket, b, reason in ends:
            if ticket in self.waiting:
                self.waiting.remove(ticket)
                closed.append(ticket)
            for i, row in enumerate(ticket.rows):
                if b is None or i == b:
                    self.rows.end(row, reason)
        return closed + self._finished()

    def _admit(self):
        """Waiting groups join in arrival order while their rows fit (a group larger than the bound runs alone)."""
        closed = []
        while self.waiting:
            ticket = self.waiting[0]
            if self.live and self.active + len(ticket.prompts) > self.max_rows:
                break
            if self.rows is None or (not self.live and self.rows.model is not self.served.model):
                self.rows = Rows(self.served.model, self.served.block_size)  # (a model swapped in while idle)
            self.waiting.popleft()
            try:
                ticket.rows = [self.rows.add(p, ticket.rng, tag=(ticket, b), **ticket.options)
                               for b, p in enumerate(ticket.prompts)]
            except MicroGPTError as e:
                ticket.error = e
                closed.append(ticket)
                continue
            self.live.append(ticket)
        return closed + self._finished()

    def _finished(self):
        done = [t for t in self.live if all(r.finish is not None for r in t.rows)]
        for t in done:
            self.live.remove(t)
        return done
