"""add:D — the sum of two D-digit numbers. User `123+456`, assistant `579`.

Numbers have exactly D digits (100..999 for D = 3; 1..9 for D = 1), so there are (9*10^(D-1))^2
problems. `a+b` and `b+a` are one sum in two orders: they share a key, so both land in the same
split and a test sum is never seen in training the other way round.
"""

from microgpt.tasks.base import Problem, Task

MAX_DIGITS = 9  # prompts stay short enough for block sizes of 32-64 tokens


class Add(Task):
    chars = "0123456789+"

    def __init__(self, digits=3):
        self.digits = digits
        self.name = f"add:{digits}"
        self.lo, self.hi = 10 ** (digits - 1), 10 ** digits - 1

    @staticmethod
    def key(a, b):
        return f"add:{min(a, b)}+{max(a, b)}"  # a+b and b+a: one key, one split

    def make(self, a, b):
        return Problem(self.name, f"{a}+{b}", str(a + b), self.key(a, b))

    def size(self):
        return (self.hi - self.lo + 1) ** 2

    def sample(self, rng):
        return self.make(rng.randint(self.lo, self.hi), rng.randint(self.lo, self.hi))

    def all_keys(self):
        for a in range(self.lo, self.hi + 1):
            for b in range(self.lo, self.hi + 1):
                yield self.key(a, b)
