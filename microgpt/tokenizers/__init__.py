"""Tokenizers: `char` (the seed's, the default) and `bpe` (byte-level BPE, trained from scratch).

Each is saved as a JSON object with a "type"; `from_dict` rebuilds it, and anything malformed
is a ValueError that the caller turns into a one-line message naming the file.
"""

from microgpt.tokenizers.base import BOS, Tokenizer
from microgpt.tokenizers.char import CharTokenizer

__all__ = ["BOS", "CharTokenizer", "Tokenizer", "from_dict"]


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
