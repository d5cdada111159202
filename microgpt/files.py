"""Files: written atomically (a crash never leaves half a file), read with a one-line error for
every way a path can be wrong (missing, a folder, unreadable, binary, not UTF-8, empty)."""

import contextlib
import hashlib
import os

from microgpt.errors import MicroGPTError


def atomic_write_bytes(path, raw):
    """Write to a temp file in the same folder, then rename: readers never see half a file. The
    file is made as any new file of the user is (0666 less the umask), not private as mkstemp's."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_sha256(path, progress=None):
    """(SHA-256 hex digest, size) of a file, read 4 MB at a time (any size in constant memory);
    `progress(n)` after each block. An OSError is the caller's to word."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
            size += len(block)
            if progress:
                progress(len(block))
    return h.hexdigest(), size


def read_bytes(path, what="data file", flag="--data"):
    """A file's bytes, or a one-line error for a missing file, a folder, an unreadable file."""
    if not os.path.exists(path):
        raise MicroGPTError(f"{what} {path} does not exist: check the path given to {flag}")
    if os.path.isdir(path):
        raise MicroGPTError(f"{what} {path} is a folder: pass a file to {flag}")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise MicroGPTError(f"cannot read {what} {path} ({e.strerror}): check its permissions") from None


def read_text(path):
    """The file's text, or a one-line error for a missing, empty, binary or non-UTF-8 file."""
    return decode_text(read_bytes(path), path)


def decode_text(raw, path):
    if b"\x00" in raw:
        raise MicroGPTError(f"data file {path} looks binary (it holds NUL bytes): pass a UTF-8 text file")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark is not a character of the text
    except UnicodeDecodeError as e:
        raise MicroGPTError(f"data file {path} is not UTF-8 text (bad byte at offset {e.start}): "
                            f"convert it to UTF-8") from None
    if not text.strip():
        raise MicroGPTError(f"data file {path} is empty: give a file with at least one line of text")
    return text
