"""The files of one checkpoint, opened together before any is read."""

import contextlib
import os
import stat

from microgpt.checkpoint.layout import FIX, corrupt
from microgpt.errors import MicroGPTError

DIR_FD = os.open in os.supports_dir_fd  # (Windows: no)


class Swapped(Exception):
    """A writer swapped a new checkpoint in while we opened this one's files: read again."""


class Snapshot:
    """A checkpoint folder's files, all opened before any is read, through one handle on the
    folder: a writer swapping in a new checkpoint meanwhile can make us read again (Swapped),
    never mix two checkpoints' files. (Without dir_fd support, as on Windows: by path.)"""

    def __init__(self, path, names):
        self.path, self.fds, self.dir_fd = path, {}, None
        try:
            if DIR_FD:
                try:
                    self.dir_fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
                except FileNotFoundError:
                    raise Swapped from None
                except OSError as e:
                    raise MicroGPTError(f"cannot read the checkpoint folder {path} ({e.strerror}): "
                                        f"check its permissions") from None
            for name in names:
                self.fds[name] = self._open(name)
        except BaseException:
            self.close()
            raise

    def _open(self, name):
        # O_NONBLOCK: a FIFO planted under a checkpoint's name must not block the open
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            if self.dir_fd is not None:
                fd = os.open(name, flags, dir_fd=self.dir_fd)
            else:
                fd = os.open(os.path.join(self.path, name), flags)
        except FileNotFoundError:
            if self._swapped():
                raise Swapped from None
            return None
        except OSError as e:
            raise MicroGPTError(f"cannot read checkpoint file {self.file(name)} ({e.strerror}): "
                                f"check its permissions") from None
        self.fds[name] = fd  # (so close() closes it whatever happens next)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise MicroGPTError(f"checkpoint file {self.file(name)} is not a regular file: {FIX}")
        return fd

    def _swapped(self):
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return True
        if self.dir_fd is None:
            return not stat.S_ISDIR(now.st_mode)
        then = os.fstat(self.dir_fd)
        return (now.st_dev, now.st_ino) != (then.st_dev, then.st_ino)

    def stamp(self):
        """(device, inode) of the folder these files were opened from."""
        st = os.fstat(self.dir_fd) if self.dir_fd is not None else os.stat(self.path)
        return (st.st_dev, st.st_ino)

    def file(self, name):
        return os.path.join(self.path, name)

    def present(self, name):
        return self.fds.get(name) is not None

    def size(self, name):
        return os.fstat(self._fd(name)).st_size if self.present(name) else 0

    def _fd(self, name):
        fd = self.fds.get(name)
        if fd is None:
            raise MicroGPTError(f"checkpoint file {self.file(name)} is missing: the checkpoint is incomplete; {FIX}")
        return fd

    def read(self, name, limit):
        """The file's bytes; one larger than `limit` is refused before it is read."""
        fd = self._fd(name)
        size = os.fstat(fd).st_size
        if size > limit:
            raise corrupt(self.file(name), f"{size:,} bytes, more than the {limit:,} such a file can need")
        chunks, got = [], 0
        try:
            while got <= limit:
                # os.read allocates what it is asked for: ask for what fstat said is there (then a
                # little more, to see the end of a file that grew meanwhile)
                chunk = os.read(fd, min(size - got if got < size else 1 << 16, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except OSError as e:
            raise MicroGPTError(f"cannot read checkpoint file {self.file(name)} ({e.strerror}): "
                                f"check the file and the disk") from None
        if got > limit:  # it grew while we read
            raise corrupt(self.file(name), f"more than the {limit:,} bytes such a file can need")
        return b"".join(chunks)

    def close(self):
        for fd in [*self.fds.values(), self.dir_fd]:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fds, self.dir_fd = {}, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
