"""What every tokenizer offers: text <-> token ids, and special tokens that only code can write.

Ids 0 .. vocab_size - 1. Ordinary tokens stand for text (a character, or a run of UTF-8 bytes);
special tokens (`<|bos|>`, the chat template's `<|user_start|>`, ...) stand for no text at all:
they are never produced from text unless the caller names them in `allowed_special`, so a user
who types "<|bos|>" gets those seven characters, not the token.
"""

import re

from microgpt.errors import MicroGPTError

BOS = "<|bos|>"  # Beginning (and end) Of Sequence: every tokenizer has it


class Tokenizer:
    special_tokens: dict  # {name: id}, set by each tokenizer

    @property
    def BOS(self):
        return self.special_tokens[BOS]

    @property
    def vocab_size(self):
        raise NotImplementedError

    def encode_ordinary(self, text):
        """Ids of plain text: special-token names in it are text like any other."""
        raise NotImplementedError

    def token_bytes(self, token_id):
        """The UTF-8 bytes a token stands for (b"" for a special token)."""
        raise NotImplementedError

    def encode(self, text, allowed_special=()):
        """Ids of `text`; the special tokens named in `allowed_special` ("all" for every one) are
        matched where they appear and become their ids."""
        names = list(self.special_tokens) if allowed_special == "all" else list(allowed_special)
        for name in names:
            if name not in self.special_tokens:
                raise MicroGPTError(f"{name!r} is not a special token of this tokenizer "
                                    f"({', '.join(self.special_tokens)})")
        if not names:
            return self.encode_ordinary(text)
        ids = []
        pattern = "(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + ")"
        for i, part in enumerate(re.split(pattern, text)):
            ids.extend([self.special_tokens[part]] if i % 2 else self.encode_ordinary(part))
        return ids

    def decode(self, ids):
        """The text of `ids`; special tokens stand for no text and are left out. Bytes that are
        not valid UTF-8 (a sample cut inside a character) show as U+FFFD, never an error."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def piece(self, token_id):
        """How one token reads on its own: its text, or a special token's name."""
        for name, i in self.special_tokens.items():
            if i == token_id:
                return name
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def readable_piece(self, token_id):
        """A token shown to a reader: special tokens as <bos>, a space as ␣, a newline as ↵,
        a tab as ⇥, bytes that are not whole UTF-8 characters (a BPE piece cut inside a
        character) as \\xNN."""
        special = {i: name for name, i in self.special_tokens.items()}
        if token_id in special:
            name = special[token_id]
            return "<" + name[2:-2] + ">" if name.startswith("<|") and name.endswith("|>") else name
        raw = self.token_bytes(token_id)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "".join(f"\\x{b:02x}" for b in raw)
        text = text.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u21e5")
        return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)

    def with_special_tokens(self, names):
        """A copy with the special tokens in `names` that it lacks added after the last id:
        every existing id keeps its meaning (a model's rows for them stay valid)."""
        raise NotImplementedError

    def to_dict(self):
        raise NotImplementedError


def check_special_tokens(special_tokens, vocab_size, what="tokenizer"):
    """A {name: id} map that is well formed: string names, distinct ids in range, BOS among them."""
    if not isinstance(special_tokens, dict) or BOS not in special_tokens:
        raise ValueError(f"{what}: special_tokens must be a {{name: id}} object holding {BOS}")
    ids = list(special_tokens.values())
    if not all(isinstance(n, str) and n for n in special_tokens) or \
            not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab_size for i in ids) or \
            len(set(ids)) != len(ids):
        raise ValueError(f"{what}: special token ids must be distinct whole numbers below {vocab_size}")
    return dict(special_tokens)
