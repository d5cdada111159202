"""What a server adds to generation (microgpt/generate.py steps the rows: serve/scheduler.py):

`Text` turns a row's tokens into text as it grows, holding back what could still become a stop
string, so streamed pieces never have to be taken back.
"""

import codecs


class Text:
    """The text of one row's tokens as they come: add() returns the piece that is now certain."""

    def __init__(self, tokenizer, stops=()):
        self.tokenizer, self.stops = tokenizer, tuple(stops)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a token may end inside a character
        self.text, self.sent = "", 0
        self.stopped = False

    def add(self, token):
        """Take one token; -> the new text that can be sent (held back: what may begin a stop string)."""
        if self.stopped:
            return ""
        self.text += self.decoder.decode(self.tokenizer.token_bytes(token))
        return self._release(final=False)

    def close(self):
        """The rest of the text at the row's end."""
        if not self.stopped:
            self.text += self.decoder.decode(b"", final=True)
        return self._release(final=True)

    def _release(self, final):
        if self.stopped:
            return ""
        if not self.stops:  # (nothing to hold back)
            piece, self.sent = self.text[self.sent:], len(self.text)
            return piece
        hits = [i for i in (self.text.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.text, self.stopped = self.text[:min(hits)], True
            end = len(self.text)
        elif final:
            end = len(self.text)
        else:
            end = len(self.text) - max((k for s in self.stops for k in range(1, len(s))
                                        if self.text.endswith(s[:k])), default=0)
        piece, self.sent = self.text[self.sent:end], max(self.sent, end)
        return piece
