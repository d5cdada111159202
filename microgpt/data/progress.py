"""A progress line for long jobs: a bar redrawn in place on a terminal, plain lines every few
seconds otherwise (a log file or CI gets a readable history, not thousands of carriage returns)."""

import sys
import time


def _mb(n):
    return f"{n / 1e6:,.1f} MB"


class Progress:
    def __init__(self, label, total=None, stream=None, every=10.0):
        self.label, self.total, self.every = label, total, every
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = self.last = time.time()

    def line(self, done, tokens):
        spent = max(time.time() - self.t0, 1e-9)
        msg = f"{self.label}: {_mb(done)}"
        if self.total:
            frac = min(1.0, done / self.total)
            msg += f" of {_mb(self.total)} ({frac:.0%})"
            if self.tty:
                msg = f"{self.label}: [{'#' * int(30 * frac):<30}] " + msg[len(self.label) + 2:]
        msg += f", {done / spent / 1e6:.1f} MB/s"
        if tokens:
            msg += f", {tokens:,} tokens ({tokens / spent:,.0f}/s)"
        if self.total and done:
            msg += f", ETA {max(0.0, spent * (self.total - done) / done):.0f}s"
        return msg

    def show(self, done, tokens=0):
        now = time.time()
        if self.tty:
            if now - self.last >= 0.2:
                self.stream.write("\r" + self.line(done, tokens).ljust(100)[:160])
                self.stream.flush()
                self.last = now
        elif now - self.last >= self.every:
            print(self.line(done, tokens), file=self.stream, flush=True)
            self.last = now

    def close(self, done, tokens=0):
        end = "\r" if self.tty else ""
        print(end + self.line(done, tokens), file=self.stream, flush=True)
