"""The safetensors file format, read and written in plain Python (no dependency; loading runs no code).

Layout: 8 bytes little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian tensor bytes. A tensor here is a shape plus its values, flat and
row-major: written from any sequence of floats (or a numpy array, taken without a Python loop),
read back as an `array.array` (which numpy also takes without a loop: np.asarray(a)).

Reading checks what the safetensors library checks, so a file of any bytes is either read or
refused with one MicroGPTError: the header's length against the file and a cap, its JSON (strict,
depth-safe), each entry's dtype, shape and offsets, and that the tensors tile the data exactly.
Nothing is allocated for a tensor before its size is checked against the bytes that hold it.
"""

import struct
import sys
from array import array

from microgpt import jsonfile
from microgpt.errors import MicroGPTError

DTYPES = {"F64": ("d", 8), "F32": ("f", 4)}
MAX_HEADER = 100_000_000  # the safetensors library's own limit


def dumps(tensors, metadata=None, dtype="F64"):
    """tensors: {name: (shape, flat values)} -> the file's bytes."""
    import json
    code, size = DTYPES[dtype]
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, (shape, flat) in tensors.items():
        if len(flat) != _numel(shape):
            raise ValueError(f"tensor {name}: {len(flat)} values for shape {shape}")
        raw = _little_endian_bytes(flat, code)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # pad so the data starts 8-byte aligned, as the library does
    return struct.pack("<Q", len(head)) + head + b"".join(chunks)


def _little_endian_bytes(flat, code):
    if hasattr(flat, "astype"):  # a numpy array: convert in one go ("<d" / "<f" are numpy dtypes too)
        return flat.astype("<" + code).tobytes()
    a = array(code, flat)
    if sys.byteorder == "big":
        a.byteswap()
    return a.tobytes()


def loads(raw, what="file", fix="delete it or train again", max_header=MAX_HEADER):
    """bytes -> ({name: (shape, flat array.array)}, metadata). Any malformation is a MicroGPTError
    "{what} is corrupt or truncated (why): {fix}"."""
    def bad(why):
        return MicroGPTError(f"{what} is corrupt or truncated ({why}): {fix}")
    raw = memoryview(raw)  # the slices below are views, not copies
    if len(raw) < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise bad(f"its header length {n:,} runs past the end of the file, {len(raw):,} bytes")
    if n > max_header:
        raise bad(f"its header length {n:,} is more than the {max_header:,} bytes allowed")
    header = jsonfile.loads(bytes(raw[8:8 + n]), lambda why: bad(f"header: {why}"))
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("its __metadata__ is not a map of strings to strings")
    data = raw[8 + n:]
    entries = {name: _entry(name, info, len(data), bad) for name, info in header.items()}
    # as the library requires: the tensors tile the data exactly, with no overlap and no gap
    reached = 0
    for begin, end, name in sorted((b, e, name) for name, (_, _, b, e) in entries.items()):
        if begin != reached:
            raise bad(f"tensor {jsonfile.short(name)} {'overlaps another' if begin < reached else 'leaves a gap'}")
        reached = end
    if reached != len(data):
        raise bad(f"{len(data) - reached:,} bytes of data belong to no tensor")
    tensors = {}
    for name, (shape, dtype, begin, end) in entries.items():
        a = array(DTYPES[dtype][0])
        a.frombytes(data[begin:end])
        if sys.byteorder == "big":
            a.byteswap()
        tensors[name] = (shape, a)
    return tensors, metadata


def _entry(name, info, data_len, bad):
    """(shape, dtype, begin, end) of one header entry, each checked; nothing allocated."""
    label = f"tensor {jsonfile.short(name)}"
    if not isinstance(info, dict):
        raise bad(f"{label} is not described by a JSON object")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise bad(f"{label} has dtype {jsonfile.short(dtype)}: only {' and '.join(DTYPES)} are read")
    if not isinstance(shape, list) or not all(_is_count(s) for s in shape):
        raise bad(f"{label} has a shape that is not a list of whole numbers >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise bad(f"{label} has data_offsets that are not two whole numbers >= 0")
    begin, end = offsets
    if not begin <= end <= data_len:
        raise bad(f"{label} has data_offsets [{begin}, {end}] outside the {data_len:,} bytes of data")
    if _numel(shape, limit=data_len) * DTYPES[dtype][1] != end - begin:
        shown = shape if len(shape) <= 8 and all(s < 10 ** 15 for s in shape) else "(too long to show)"
        raise bad(f"{label} of shape {shown} does not fill its {end - begin:,} bytes")
    return shape, dtype, begin, end


def _is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _numel(shape, limit=None):
    """The number of elements; past `limit` only "more than limit" matters, so a shape of huge
    numbers is not multiplied out (that alone could take minutes)."""
    if limit is not None and 0 in shape:
        return 0
    n = 1
    for s in shape:
        n *= s
        if limit is not None and n > limit:
            return limit + 1
    return n
