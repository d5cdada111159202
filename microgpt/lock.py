"""One writer per run directory.

A command that writes a run (train, sft, rl) holds an exclusive lock on RUN/.lock for as long as
it writes; the file says who holds it (pid, host, command, start time), so a second writer can
refuse with one line naming that process. The lock is the operating system's (flock): it dies
with its process, so a lock left by a killed run is simply taken over. Where flock does not
exist (Windows), the file alone is the lock and a dead owner's pid lets us take it over.
Readers (sample, eval, plot, report) take no lock: checkpoints are swapped in atomically.
"""

import contextlib
import json
import os
import socket
import sys
import time

from microgpt.errors import MicroGPTError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK = ".lock"


class RunLock:
    def __init__(self, run_dir):
        self.path = os.path.join(run_dir, LOCK)
        self.fd = None

    def acquire(self):
        try:
            return self._acquire()
        except OSError as e:  # a read-only or full disk, no permission: one line, like every error
            raise MicroGPTError(f"cannot take the lock {self.path} ({e.strerror or e}): fix the folder's "
                                f"permissions or free some space, or use another --out") from None

    def _acquire(self):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if fcntl is not None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held by another process (any other failure is no lock at all)
                os.close(fd)
                self._refuse()
            except BaseException:
                os.close(fd)
                raise
        else:
            fd = self._acquire_by_pid()
        self.fd = fd
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(owner) + "\n").encode())
        except BaseException:
            self.release()
            raise
        return self

    def _acquire_by_pid(self):
        for _ in range(2):
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = self.owner().get("pid")
                if isinstance(pid, int) and _alive(pid):
                    self._refuse()
                os.unlink(self.path)  # its owner is gone: take the lock over
        self._refuse()

    def owner(self):
        try:
            with open(self.path) as f:
                info = json.loads(f.read() or "{}")
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError, RecursionError):
            return {}

    def _refuse(self):
        o = self.owner()
        who = f"process {o.get('pid', '?')} on {o.get('host', '?')} (`{o.get('command', '?')}`, " \
              f"started {o.get('started', '?')})"
        raise MicroGPTError(f"{os.path.dirname(self.path)} is being written by {who}: wait for it to finish "
                            f"or stop it, or use another --out")

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None
            if fcntl is None:
                os.unlink(self.path)

    def __del__(self):  # a Run that failed half-way through setting up lets go of its run
        with contextlib.suppress(Exception):  # (at interpreter exit, anything may be gone)
            self.release()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
