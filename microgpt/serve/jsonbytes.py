"""JSON as bytes for the wire: orjson where it is installed (the serve extra brings it on CPython),
else the standard library's json. A streamed token is one small JSON chunk, so its encoding is on
every token's path: orjson makes a chunk with five logprobs ~10x faster (bench/bench_serve.py).

On what a response holds (strings, ints, finite floats, lists, dicts with string keys) the two
differ only in spacing (orjson writes none) and in how a float's exponent is written (1e-05 vs
1e-5): the same JSON values either way (a test streams one request with each).
"""

import json


def json_dumps(obj):
    """The standard library's encoding, as bytes."""
    return json.dumps(obj).encode()


try:
    from orjson import dumps, loads
except ImportError:  # (PyPy, or serve without its extra)
    dumps, loads = json_dumps, json.loads
