"""reverse — spell a word backwards. User `reverse emma`, assistant `amme`.

The words are the distinct names of the names data set (29,494 of them) unless given;
`reverse:L` keeps the words of at most L letters, so a whole conversation fits a small block
(`<|bos|>`, 4 chat specials, "reverse " and the word twice: 13 + 2L tokens with a char tokenizer).
"""

from microgpt.tasks.base import Problem, Task, check_words, default_words


class Reverse(Task):
    def __init__(self, max_len=None, words=None):
        self.name = "reverse" if max_len is None else f"reverse:{max_len}"
        self.words = check_words(default_words() if words is None else words, self.name, max_len)
        self.chars = "".join(sorted(set("reverse " + "".join(self.words))))

    @staticmethod
    def key(word):
        return f"reverse:{word}"

    def make(self, word):
        return Problem(self.name, f"reverse {word}", word[::-1], self.key(word))

    def size(self):
        return len(self.words)

    def sample(self, rng):
        return self.make(rng.choice(self.words))

    def all_keys(self):
        return (self.key(w) for w in self.words)
