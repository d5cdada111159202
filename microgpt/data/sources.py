"""Sources of a prepared corpus: paths -> documents, in order and in constant memory.

`expand_sources` turns files, folders and globs into data files; `plan_parts` cuts one file into
Parts (picklable units of work, one per worker task); `read_part` yields a Part's Pieces. Formats:
plain text (.txt .md .rst: a document per line, per file, or one continuous text), JSONL (a string
field of each object) and Parquet (a string column), text and JSONL also as .gz/.zst; readers.py
and parquet.py read them. Every bad input is a one-line MicroGPTError naming the file, the line
(or row) and the fix.
"""

import glob
import os
import re
from typing import NamedTuple, Optional

from microgpt.data import parquet, readers
from microgpt.data.readers import SEGMENT_CHARS, Piece, open_file
from microgpt.errors import MicroGPTError
from microgpt.files import file_sha256

__all__ = ["SEGMENT_CHARS", "TEXT_MODES", "Part", "Piece", "expand_sources", "plan_parts", "read_part",
           "source_format", "source_info"]
TEXT_MODES = ("lines", "file", "stream")  # one document per line | one per file | continuous text
TEXT_EXTS = (".txt", ".text", ".md", ".markdown", ".rst")
JSONL_EXTS = (".jsonl", ".ndjson")
FORMATS = "give .txt/.md (text), .jsonl or .parquet files, optionally .gz or .zst"
# where a part may start: after a newline (stream mode: one followed by an ASCII letter or digit)
BYTE_CUTS = {"lines": re.compile(b"\n"), "stream": re.compile(readers.CUT.pattern.encode())}


class Part(NamedTuple):
    """One unit of work: text/jsonl uncompressed, bytes [start, end) of the file (end None: to its
    end); parquet, row groups [start, end); compressed or file mode, the whole file (0, None)."""
    path: str
    kind: str  # "text" | "jsonl" | "parquet"
    compression: Optional[str]  # None | "gz" | "zst"
    start: int
    end: Optional[int]


def source_format(path):
    """(kind, compression) from the file's name."""
    name = str(path).lower()
    compression = next((c for c in ("gz", "zst") if name.endswith("." + c)), None)
    if compression:
        name = name[:-len(compression) - 1]
    if name.endswith(TEXT_EXTS):
        return "text", compression
    if name.endswith(JSONL_EXTS):
        return "jsonl", compression
    if name.endswith(".parquet") and not compression:
        return "parquet", None
    raise MicroGPTError(f"unknown format of {path}: {FORMATS}")


def _known(path):
    try:
        return bool(source_format(path))
    except MicroGPTError:
        return False


def _folder_files(folder):
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(top, f) for f in files if not f.startswith(".") and _known(f)]
    return sorted(found)


def expand_sources(sources):
    """The data files of files, folders (recursively) and globs, in order, each once."""
    paths = []
    for source in map(str, sources):
        if os.path.isdir(source):
            found = _folder_files(source)
        elif os.path.exists(source):
            source_format(source)  # a file named directly must be of a known format
            found = [source]
        elif any(c in source for c in "*?["):
            found = []
            for match in sorted(glob.glob(source, recursive=True)):
                found += _folder_files(match) if os.path.isdir(match) else [match] if _known(match) else []
        else:
            raise MicroGPTError(f"source {source} does not exist: check the path")
        if not found:
            raise MicroGPTError(f"source {source} holds no data files: {FORMATS}")
        paths += found
    seen, unique = set(), []
    for p in paths:
        if os.path.abspath(p) not in seen:
            seen.add(os.path.abspath(p))
            unique.append(p)
    return unique


def source_info(path):
    """What a manifest records of a source: its path, size and SHA-256 (read a block at a time)."""
    try:
        digest, size = file_sha256(path)
    except OSError as e:
        raise MicroGPTError(f"cannot read {path} ({e.strerror}): check its permissions") from None
    return {"path": path, "bytes": size, "sha256": digest}


def plan_parts(path, text_mode="lines", part_bytes=64 * 2**20):
    """Parts covering the whole file, in order, of about part_bytes each where the file allows."""
    kind, compression = source_format(path)
    if kind == "parquet":
        return [Part(path, kind, None, a, b) for a, b in parquet.plan_row_groups(path, part_bytes)]
    if compression or (kind == "text" and text_mode == "file"):
        return [Part(path, kind, compression, 0, None)]
    cut = BYTE_CUTS["stream" if kind == "text" and text_mode == "stream" else "lines"]
    starts, part_bytes = [0], max(1, part_bytes)
    with open_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        while starts[-1] + part_bytes < size:
            start = _next_cut(f, starts[-1] + part_bytes, cut)
            if start is None or start >= size:
                break
            starts.append(start)
    return [Part(path, kind, None, a, b) for a, b in zip(starts, starts[1:] + [None])]


def _next_cut(f, pos, cut):
    """The first offset >= pos right after a newline (stream: one followed by a letter or digit)."""
    f.seek(pos - 1)
    while True:
        block = f.read(readers.BLOCK)
        m = cut.search(block)
        if m:
            return pos + m.start()
        if len(block) < 2:
            return None
        pos += len(block) - 1  # (a newline at the block's end may pair with the next block's byte)
        f.seek(pos - 1)


def read_part(part, text_mode="lines", text_field="text"):
    """The Pieces of one Part, in order."""
    if text_mode not in TEXT_MODES:
        raise MicroGPTError(f"unknown text mode {text_mode!r}: use one of {', '.join(TEXT_MODES)}")
    if part.kind == "parquet":
        return (Piece(t, True) for t in parquet.read_row_groups(part, text_field))
    if part.kind == "jsonl":
        return readers.read_jsonl(part, text_field)
    return {"lines": readers.read_lines, "file": readers.read_file, "stream": readers.read_stream}[text_mode](part)
