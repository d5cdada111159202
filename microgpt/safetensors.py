"""The safetensors file format, read and written in plain Python (no dependency; loading runs no code).

Layout: 8 bytes little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian tensor bytes. A tensor here is a shape plus its values, flat and
row-major: written from any sequence of floats (or a numpy array, taken without a Python loop),
read back as an `array.array` (which numpy also takes without a loop: np.asarray(a)).
"""

import json
import struct
import sys
from array import array

from microgpt import MicroGPTError

DTYPES = {"F64": ("d", 8), "F32": ("f", 4)}


def dumps(tensors, metadata=None, dtype="F64"):
    """tensors: {name: (shape, flat values)} -> the file's bytes."""
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


def loads(raw, what="file"):
    """bytes -> ({name: (shape, flat array.array)}, metadata). Any malformation is a MicroGPTError."""
    def bad(why):
        return MicroGPTError(f"{what} is corrupt or truncated ({why}): delete it or train again")
    if len(raw) < 8:
        raise bad("shorter than its 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8:
        raise bad("header runs past the end of the file")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("header is not valid JSON") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        try:
            code, size = DTYPES[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r} has a bad or unsupported entry") from None
        if not 0 <= begin <= end <= len(data) or end - begin != _numel(shape) * size:
            raise bad(f"tensor {name!r} does not fit the data")
        a = array(code)
        a.frombytes(data[begin:end])
        if sys.byteorder == "big":
            a.byteswap()
        tensors[name] = (shape, a)
    return tensors, metadata


def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n
