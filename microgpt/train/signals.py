"""Signals during training: SIGINT (Ctrl-C), SIGTERM (schedulers, kill) and SIGHUP (a closed
terminal) all ask the loop to finish its step, save and exit; every process of a distributed run
stops at the same step. A second Ctrl-C in a single process aborts at once."""

import contextlib
import signal


class StopSignals:
    """While installed (a `with` block), `signum` is the first stop signal received, else None."""

    def __init__(self, world_size=1, log=print):
        self.world_size, self.log = world_size, log
        self.signum, self.handlers = None, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                with contextlib.suppress(ValueError):  # (not the main thread, a notebook's worker say: none)
                    self.handlers[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc):
        for sig, h in self.handlers.items():
            signal.signal(sig, h)
        self.handlers = {}

    def _on_signal(self, signum, frame):
        if self.signum is not None:
            if signum == signal.SIGINT and self.world_size == 1:
                raise KeyboardInterrupt
            return  # torchrun forwards the signal the terminal already sent: one is enough
        self.signum = signum
        self.log(f"\n{signal.Signals(signum).name}: finishing this step, saving a checkpoint, then exiting"
                 + (" (Ctrl-C again to abort)" if self.world_size == 1 else ""))
