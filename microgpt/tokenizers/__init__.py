"""Tokenizers: `char` (the seed's, the default) and `bpe` (byte-level BPE, trained from scratch).

Each is saved as a JSON object with a "type"; `from_dict` rebuilds it, and anything malformed
is a ValueError that the caller turns into a one-line message naming the file.
"""

import json

from microgpt.errors import MicroGPTError
from microgpt.tokenizers.base import BOS, Tokenizer
from microgpt.tokenizers.char import CharTokenizer

__all__ = ["BOS", "CharTokenizer", "Tokenizer", "from_dict", "load_file", "save_file"]


def from_dict(d):
    if not isinstance(d, dict):
        raise ValueError("a tokenizer must be a JSON object")
    kind = d.get("type")
    if kind == "char":
        return CharTokenizer.from_dict(d)
    if kind == "bpe":
        from microgpt.tokenizers.bpe import BPETokenizer
        return BPETokenizer.from_dict(d)
    raise ValueError(f"unknown tokenizer type {kind!r} (known: char, bpe)")


def load_file(path):
    """A tokenizer saved by `microgpt tokenizer train` (its JSON object), checked."""
    try:
        with open(path, "rb") as f:
            d = json.loads(f.read().decode("utf-8"))
        return from_dict(d)
    except FileNotFoundError:
        raise MicroGPTError(f"tokenizer file {path} does not exist: train one with "
                            f"`microgpt tokenizer train --data FILE --vocab-size N --out {path}`") from None
    except OSError as e:
        raise MicroGPTError(f"cannot read tokenizer file {path} ({e.strerror}): check the path") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        why = e if isinstance(e, ValueError) and not isinstance(e, json.JSONDecodeError) else "not valid JSON"
        raise MicroGPTError(f"tokenizer file {path} is not a valid tokenizer ({why}): train it again") from None


def save_file(tokenizer, path):
    from microgpt.files import atomic_write_bytes
    try:
        atomic_write_bytes(path, (json.dumps(tokenizer.to_dict()) + "\n").encode())
    except OSError as e:
        raise MicroGPTError(f"cannot write {path} ({e.strerror}): check the folder and free space") from None
