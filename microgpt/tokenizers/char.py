"""Character tokenizer (the seed's): each distinct character is a token id, plus special tokens.

The seed's vocabulary is the sorted characters of the data, ids 0..n-1, then BOS = n. Special
tokens added later (the chat template's) and characters added later (digits a names model never
saw) take the next free ids, so every id a trained model knows keeps its meaning. Saved as
{"type": "char", "chars": "abc...", "special_tokens": {"<|bos|>": 26, ...}}: the special tokens
have their ids, and the characters fill the remaining ids in order.
"""

from microgpt.errors import MicroGPTError
from microgpt.tokenizers.base import BOS, Tokenizer, check_special_tokens


class CharTokenizer(Tokenizer):
    def __init__(self, chars, special_tokens=None):
        self.chars = list(chars)
        if special_tokens is None:
            special_tokens = {BOS: len(self.chars)}  # the seed: BOS right after the characters
        n = len(self.chars) + len(special_tokens)
        self.special_tokens = check_special_tokens(special_tokens, n, "char tokenizer")
        if len(set(self.chars)) != len(self.chars) or not all(len(c) == 1 for c in self.chars):
            raise ValueError("char tokenizer: chars must be distinct single characters")
        specials = set(self.special_tokens.values())
        self.itos = {}  # id -> character, for the ids that are not special
        free = (i for i in range(n) if i not in specials)
        self.stoi = {ch: i for ch, i in zip(self.chars, free)}
        self.itos = {i: ch for ch, i in self.stoi.items()}
        self._vocab_size = n

    @property
    def vocab_size(self):
        return self._vocab_size

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    def encode_ordinary(self, text):
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as e:
            raise MicroGPTError(
                f"character {e.args[0]!r} is not in the model's vocabulary "
                f"({''.join(self.chars)!r}): use only characters the model was trained on") from None

    def token_bytes(self, token_id):
        ch = self.itos.get(token_id)
        return ch.encode("utf-8") if ch is not None else b""

    def with_special_tokens(self, names):
        specials = dict(self.special_tokens)
        for name in names:
            if name not in specials:
                specials[name] = self.vocab_size + len(specials) - len(self.special_tokens)
        return CharTokenizer(self.chars, specials)

    def with_chars(self, text):
        """A copy that can also encode every character of `text`; new characters take new ids."""
        new = sorted(set(text) - set(self.chars))
        if not new:
            return self
        # the new characters fill ids from vocab_size on, after every existing id
        return CharTokenizer(self.chars + new, self.special_tokens)

    def to_dict(self):
        return {"type": "char", "chars": "".join(self.chars), "special_tokens": dict(self.special_tokens)}

    @classmethod
    def from_dict(cls, d):
        chars = d.get("chars")
        if not isinstance(chars, str):
            raise ValueError("char tokenizer: 'chars' must be a string")
        return cls(chars, d.get("special_tokens"))
