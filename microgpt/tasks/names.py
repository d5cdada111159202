"""Names tasks: RL on the seed's names model, which writes a name from `<|bos|>` with no chat.

A names task has no prompt and no answer: every problem is the empty prompt, and the reward
judges the name the model writes (after .strip()). There is nothing given to the model that
a test problem could leak, so the train and test splits are the same empty problem.

* `names-ending:SUFFIX` — reward 1 when the name ends with SUFFIX (`names-ending:a`);
* `names-length:LO-HI` — reward 1 when LO <= len(name) <= HI (`names-length:6-8`).
"""

from microgpt.tasks.base import Problem, Task, check_num, check_split, no_conversations


class NamesTask(Task):
    chat = False

    def size(self):
        return 1

    def problems(self, split, num, seed=0):
        """`num` copies of the one problem, the empty prompt: each is one name to sample."""
        check_split(split)
        check_num(num)
        return [Problem(self.name, "", None, self.name)] * num

    def max_problems(self, split):
        check_split(split)
        return float("inf")  # no limit: the empty prompt, sampled as many times as asked

    def has_problems(self, split, num):
        return True

    def reward(self, problem, response):
        """1.0 when the name fulfils the task, else 0.0 (no partial credit); an empty name never does."""
        name = response.strip()
        return 1.0 if name and self.accepts(name) else 0.0

    def accepts(self, name):
        raise NotImplementedError

    def conversation(self, *problems):
        raise no_conversations(self.name)


class NamesEnding(NamesTask):
    def __init__(self, suffix):
        self.suffix = suffix
        self.name = f"names-ending:{suffix}"

    def accepts(self, name):
        return name.endswith(self.suffix)


class NamesLength(NamesTask):
    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi
        self.name = f"names-length:{lo}-{hi}"

    def accepts(self, name):
        return self.lo <= len(name) <= self.hi
