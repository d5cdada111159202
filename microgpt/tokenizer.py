"""Character tokenizer: each distinct character is a token id, plus one BOS token."""

from microgpt import MicroGPTError


class CharTokenizer:
    def __init__(self, chars):
        self.chars = list(chars)          # sorted unique characters -> ids 0..n-1
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.BOS = len(self.chars)        # Beginning (and end) Of Sequence
        self.vocab_size = len(self.chars) + 1

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    def encode(self, s):
        try:
            return [self.stoi[ch] for ch in s]
        except KeyError as e:
            raise MicroGPTError(
                f"character {e.args[0]!r} is not in the model's vocabulary "
                f"({''.join(self.chars)!r}): use only characters the model was trained on") from None

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids if i != self.BOS)

    def to_dict(self):
        return {"type": "char", "chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, d):
        if d.get("type") != "char":
            raise MicroGPTError(f"unknown tokenizer type {d.get('type')!r} in checkpoint")
        return cls(d["chars"])
