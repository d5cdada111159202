"""Readers of text and JSONL sources (sources.py plans the parts; parquet.py reads Parquet): a part's
bytes, decompressed and cut into blocks of whole lines, checked (no NUL byte, valid UTF-8), then
made into Pieces: one per line, one per file, stream segments, or one per JSONL object. Constant
memory: a block at a time (a file-mode document is the one thing held whole)."""

import gzip
import importlib
import json
import os
import re
import zlib
from typing import NamedTuple

from microgpt.errors import MicroGPTError

# orjson (the data extra) parses JSONL lines in half json's time. It refuses some lines json takes (a lone
# surrogate escape, NaN, a number past 64 bits) and bad JSON: those go to json, whose messages we quote.
try:
    from orjson import loads as strict_loads
except ImportError:
    strict_loads = None

SEGMENT_CHARS = 4096  # stream mode: segments of about this many characters
BLOCK = 1 << 20  # bytes read at a time
BOM = b"\xef\xbb\xbf"
# Stream cuts: right after a newline followed by an ASCII letter or digit. No chunk of the BPE split
# pattern spans such a place (none runs from a line break into a letter or digit), and the chunks
# before it end the same way whatever follows, so encoding the pieces = encoding the whole text.
CUT = re.compile("\n[A-Za-z0-9]")
SURROGATE = re.compile("[\ud800-\udfff]")


class Piece(NamedTuple):
    text: str  # a document, or in stream mode a segment of the continuous text
    ends_doc: bool  # a document ends here (stream mode: only on the file's last segment)


def fail(path, what, line=None, row=None):
    where = f" line {line}" if line is not None else f" row {row}" if row is not None else ""
    return MicroGPTError(f"{path}{where}: {what}")


def optional_module(name):
    """pyarrow / zstandard, imported when first needed: the core install does without them."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MicroGPTError(f"reading this data needs {name.split('.')[0]}: pip install '.[data]'") from None


def open_file(path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise MicroGPTError(f"cannot read {path} ({e.strerror}): check its permissions") from None


def _chunks(part):
    """The part's bytes (decompressed), a chunk at a time."""
    with open_file(part.path) as f:
        try:
            if part.compression is None:
                f.seek(part.start)
                left = None if part.end is None else part.end - part.start
                while left is None or left > 0:
                    chunk = f.read(BLOCK if left is None else min(BLOCK, left))
                    if not chunk:
                        return
                    left = None if left is None else left - len(chunk)
                    yield chunk
            elif part.compression == "gz":
                with gzip.GzipFile(fileobj=f) as g:
                    yield from iter(lambda: g.read(BLOCK), b"")
            else:
                yield from _zstd_chunks(f)
        except (OSError, EOFError, zlib.error) as e:
            what = "a corrupt or truncated gzip file" if part.compression == "gz" else "cannot be read"
            raise fail(part.path, f"{what} ({e}): check the file, or re-download it") from None


def _zstd_chunks(f):
    zstd = optional_module("zstandard")
    d, raw, fed = zstd.ZstdDecompressor().decompressobj(), b"", False
    try:
        while raw or (raw := f.read(1 << 16)):  # (small inputs: a highly compressed chunk stays bounded)
            out, raw, fed = d.decompress(raw), b"", True
            if d.eof:  # one frame done: the next, if any, starts with its unused data
                raw, d, fed = d.unused_data, zstd.ZstdDecompressor().decompressobj(), False
            if out:
                yield out
    except zstd.ZstdError as e:
        raise fail(f.name, f"a corrupt zstd file ({e}): check the file, or re-download it") from None
    if fed:
        raise fail(f.name, "a truncated zstd file (its last frame ends early): re-download it")


def line_at(part, offset):
    """The 1-based line number of a byte offset of the part's file (counted only for an error)."""
    n, pos = 1, 0
    for chunk in _chunks(part._replace(start=0, end=offset if part.compression is None else None)):
        n += chunk.count(b"\n", 0, max(0, offset - pos))
        pos += len(chunk)
        if pos >= offset:
            break
    return n


def _blocks(part):
    """(offset, bytes) blocks of whole lines (the last may lack its newline), the BOM dropped
    at the start of the file. Offsets are of the file's (decompressed) bytes."""
    offset, pending = part.start, []
    for chunk in _chunks(part):
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            pending.append(chunk)  # (a long line: gathered, then joined once)
            continue
        block = b"".join(pending + [chunk[:cut]])
        pending = [chunk[cut:]] if cut < len(chunk) else []
        yield offset, block
        offset += len(block)
    if pending:
        yield offset, b"".join(pending)


def _texts(part):
    """(offset, text) of each block, checked: no NUL byte, valid UTF-8."""
    for offset, block in _blocks(part):
        if offset == 0 and block.startswith(BOM):  # a byte-order mark is not a character of the text
            offset, block = 3, block[3:]
        if b"\x00" in block:
            at = offset + block.index(b"\x00")
            raise fail(part.path, "holds NUL bytes (a binary file?): give UTF-8 text", line_at(part, at))
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as e:
            at = offset + e.start
            raise fail(part.path, f"not UTF-8 (bad byte at offset {at}): convert it to UTF-8",
                       line_at(part, at)) from None
        yield offset, text


def read_lines(part):
    """Every non-empty line, stripped: the seed's split_docs, a block at a time."""
    new = tuple.__new__  # (Piece(...) costs a Python call: a third of the time on short lines)
    for _, text in _texts(part):
        for line in text.split("\n"):  # (the seed's split_docs: "\n" only, each line stripped)
            line = line.strip()
            if line:
                yield new(Piece, (line, True))


def read_file(part):
    """The file's text as one document (the BOM dropped); a file of only white space gives none."""
    text = "".join(t for _, t in _texts(part))
    if text.strip():
        yield Piece(text, True)


def _at_end(part):
    return part.end is None or part.compression is not None or part.end >= os.path.getsize(part.path)


def read_stream(part):
    """The text exactly, in segments of at least SEGMENT_CHARS characters cut only at CUT (else
    longer); the part's last segment ends the document only where the part ends the file."""
    buf, pos, scan = "", 0, 0
    for _, text in _texts(part):
        # (what was searched already is not searched again, but for a newline at its very end)
        buf, scan = buf[pos:] + text, max(0, len(buf) - pos - 1)
        pos = 0
        while True:
            m = CUT.search(buf, max(scan, pos + SEGMENT_CHARS - 1))
            if not m:
                break
            yield Piece(buf[pos:m.start() + 1], False)
            pos = m.start() + 1
    if buf[pos:]:
        yield Piece(buf[pos:], _at_end(part))


def _json_type(value):
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def read_jsonl(part, field):
    """Each non-blank line a JSON object; its `field` (a string) a document, empty ones skipped."""
    for offset, text in _texts(part):
        for i, line in enumerate(text.split("\n")):
            if not line or line.isspace():
                continue
            obj = None
            if strict_loads is not None:
                try:  # noqa: SIM105 (a with-block per line costs more)
                    obj = strict_loads(line)
                except ValueError:
                    pass
            lax = obj is None  # (parsed by json, which takes lone surrogate escapes: checked below)
            if lax:
                try:
                    obj = json.loads(line)
                except (ValueError, RecursionError) as e:
                    why = f"{e.msg}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)[:80]
                    raise fail(part.path, f"not JSON ({why}): give one JSON object per line",
                               line_at(part, offset) + i) from None
            if not isinstance(obj, dict):
                raise fail(part.path, f"a JSON {_json_type(obj)}, not an object: give one JSON object per line",
                           line_at(part, offset) + i)
            if field not in obj:
                keys = ", ".join(list(obj)[:20]) or "no fields"
                raise fail(part.path, f"no field {field!r} (it has: {keys}): pass --text-field NAME",
                           line_at(part, offset) + i)
            value = obj[field]
            if not isinstance(value, str):
                raise fail(part.path, f"field {field!r} is a JSON {_json_type(value)}, not a string: pass "
                           f"--text-field NAME of a text field", line_at(part, offset) + i)
            if lax and not value.isascii() and SURROGATE.search(value):  # (isascii: a flag, no scan)
                raise fail(part.path, f"field {field!r} holds a lone surrogate (\\ud800-\\udfff escape, not "
                           f"a character): fix the text", line_at(part, offset) + i)
            if value:
                yield Piece(value, True)
