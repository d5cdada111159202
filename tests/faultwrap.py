"""Make the operating system fail on purpose, as a full disk, a read-only folder or a kill would.

In a test:    with Faults(["write"], at=3, err="ENOSPC"):  run.train()
As a wrapper: python tests/faultwrap.py CALLS AT ERR microgpt-args...
              (e.g. `python tests/faultwrap.py replace,rename 11 ENOSPC train --out r ...`)

CALLS are os functions that write: open (only opens for writing), write, fsync, replace,
rename, mkdir. Their calls are counted together; the AT-th and every later one raise
OSError(ERR) (a disk that is full stays full). ERR=exit instead ends the process at the AT-th
call (os._exit), as SIGKILL or a power cut would, with nothing cleaned up.
"""

import contextlib
import errno
import os
import sys

WRITE_CALLS = ("open", "write", "fsync", "replace", "rename", "mkdir")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Faults:
    def __init__(self, calls=WRITE_CALLS, at=1, err="ENOSPC"):
        self.calls, self.at, self.err = list(calls), at, err
        self.count = 0
        self.saved = {}

    def _wrap(self, name, real):
        def call(*args, **kwargs):
            if name == "open" and not ((args[1] if len(args) > 1 else kwargs.get("flags", 0)) & WRITE_FLAGS):
                return real(*args, **kwargs)  # a read: not a write that could fail for lack of space
            self.count += 1
            if self.count >= self.at:
                if self.err == "exit":
                    os._exit(9)
                code = getattr(errno, self.err)
                raise OSError(code, os.strerror(code))
            return real(*args, **kwargs)
        return call

    def install(self):
        for name in self.calls:
            self.saved[name] = getattr(os, name)
            setattr(os, name, self._wrap(name, self.saved[name]))
        return self

    def remove(self):
        for name, real in self.saved.items():
            setattr(os, name, real)
        self.saved = {}

    def __enter__(self):
        return self.install()

    def __exit__(self, *exc):
        self.remove()


@contextlib.contextmanager
def counting(calls=WRITE_CALLS):
    """How many of these calls a block makes: `with counting() as c: ...; c.count`."""
    with Faults(calls, at=float("inf")) as f:
        yield f


if __name__ == "__main__":
    calls, at, err, *args = sys.argv[1:]
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from microgpt.cli import main
    Faults(calls.split(","), int(at), err).install()
    sys.argv = ["microgpt", *args]
    main(args)
