"""A mixture of tasks (`add,reverse,count`): problems taken from each part in turn.

Problem j comes from part j mod k (k parts), so any `num` gives every part its share within
one problem, and drawing more keeps the first ones. Each part draws its own problems with the
same seed, and keeps its own split, so the mixture's splits never overlap either. The reward
of a problem is its own task's: the mixture looks the task up by `problem.task`.
"""

from microgpt.errors import MicroGPTError
from microgpt.tasks.base import Task, check_num, check_split


class Mixture(Task):
    def __init__(self, parts):
        names = [p.name for p in parts]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise MicroGPTError(f"task {', '.join(twice)} appears twice in the mixture {','.join(names)}: "
                                f"name each task once")
        if len({p.chat for p in parts}) > 1:
            raise MicroGPTError(f"the mixture {','.join(names)} mixes chat tasks with names tasks "
                                f"(plain names, no chat): mix only tasks of one kind")
        self.parts = list(parts)
        self.by_name = {p.name: p for p in parts}
        self.name = ",".join(names)
        self.chat = parts[0].chat
        self.chars = "".join(sorted(set("".join(p.chars for p in parts))))

    def size(self):
        return sum(p.size() for p in self.parts)

    def sample(self, rng):
        """A problem of a part chosen with even odds (the parts' shares in problems())."""
        return rng.choice(self.parts).sample(rng)

    def shares(self, num):
        """How many of `num` problems each part gives: part i gives problems i, i + k, i + 2k, ..."""
        k = len(self.parts)
        return [len(range(i, num, k)) for i in range(k)]

    def max_problems(self, split):
        # part i can give c_i problems, which covers the mixture's problems up to c_i * k + i
        check_split(split)
        k = len(self.parts)
        return min(p.max_problems(split) * k + i for i, p in enumerate(self.parts))

    def has_problems(self, split, num):
        return all(p.has_problems(split, n) for p, n in zip(self.parts, self.shares(num)))

    def problems(self, split, num, seed=0):
        check_split(split)
        check_num(num)
        if not self.has_problems(split, num):
            raise MicroGPTError(f"task {self.name} has only {self.max_problems(split)} {split} problems "
                                f"(its parts take turns), fewer than the {num} asked for: "
                                f"ask for at most that many")
        k = len(self.parts)
        drawn = [p.problems(split, n, seed) for p, n in zip(self.parts, self.shares(num))]
        return [drawn[j % k][j // k] for j in range(num)]

    def part(self, problem):
        try:
            return self.by_name[problem.task]
        except KeyError:
            raise MicroGPTError(f"a problem of task {problem.task} is not one of the mixture {self.name}: "
                                f"check it with its own task") from None

    def reward(self, problem, response):
        return self.part(problem).reward(problem, response)

    def is_correct(self, problem, response):
        return self.part(problem).is_correct(problem, response)

    def conversation(self, *problems):
        for p in problems:
            self.part(p)  # each problem one of the mixture's
        return super().conversation(*problems)
