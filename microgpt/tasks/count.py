"""count — how many times a letter appears in a word. User `count a in banana`, assistant `3`.

Every (letter, word) pair is a problem: the letters are those of the words' alphabet (a-z for
names), so there are 26 x 29,494 problems. A draw picks, with even odds, a letter of the word
or a letter it lacks: half the answers are 0 and half are not (a letter drawn from all 26
would make ~80% of the answers 0, and "0" a good guess). `count:L` keeps the words of at most L letters.
"""

from microgpt.tasks.base import Problem, Task, check_words, default_words


class Count(Task):
    def __init__(self, max_len=None, words=None):
        self.name = "count" if max_len is None else f"count:{max_len}"
        self.words = check_words(default_words() if words is None else words, self.name, max_len)
        self.alphabet = sorted(set("".join(self.words)))
        self.chars = "".join(sorted(set("count in 0123456789" + "".join(self.alphabet))))

    @staticmethod
    def key(letter, word):
        return f"count:{letter}:{word}"

    def make(self, letter, word):
        return Problem(self.name, f"count {letter} in {word}", str(word.count(letter)), self.key(letter, word))

    def size(self):
        return len(self.alphabet) * len(self.words)

    def sample(self, rng):
        word = rng.choice(self.words)
        present = sorted(set(word))
        absent = [c for c in self.alphabet if c not in present]
        letter = rng.choice(present if rng.random() < 0.5 or not absent else absent)
        return self.make(letter, word)

    def all_keys(self):
        return (self.key(c, w) for w in self.words for c in self.alphabet)
