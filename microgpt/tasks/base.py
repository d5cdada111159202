"""What every task offers: problems drawn from a seed, and a check of an answer.

A task makes problems (a prompt and the answer that earns the reward) and checks a model's
response. The same check serves three stages: supervised fine-tuning trains on the answers,
evaluation counts how often a sample is right (pass@k), and RL uses it as the reward.

Train and test never overlap, whatever the seeds and counts: a problem's split is decided by
a stable hash of its canonical key ("add:123+456"), not by the draw, so about 10% of all
problems are test problems, always the same ones. Drawing `num` problems of a split walks a
random stream seeded by (task, seed) and keeps the candidates of that split, each once.
"""

import hashlib
import random
from dataclasses import dataclass
from typing import Optional

from microgpt.errors import MicroGPTError

SPLITS = ("train", "test")
TEST_PERCENT = 10  # share of every task's problems that belong to the test split

# Counting a split means hashing every problem of the task (~1 s for add:3's 810,000). A task
# with more than this many problems is counted only when `num` is over 5% of them: below that,
# its test split (10% +- a few hundred problems, by the hash) is sure to hold enough.
COUNT_ALWAYS_BELOW = 100_000


def split_of(key):
    """"train" or "test" for a problem's canonical key: a stable hash, the same on every machine."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return "test" if h % 100 < TEST_PERCENT else "train"


@dataclass(frozen=True)
class Problem:
    task: str                # name of the task that made it (a mixture dispatches on it)
    prompt: str              # the user message ("" for names tasks: the model starts from BOS)
    answer: Optional[str]    # the reply that earns reward 1 (None: names tasks judge the sample itself)
    key: str = ""            # canonical identity: its hash decides the split


class Task:
    """A source of problems with checkable answers. Subclasses set `name`, `chars` and define
    `size`, `sample` and `all_keys`; `chat = False` marks tasks whose samples are plain documents."""

    name = "task"
    chat = True   # True: a problem is a user message and its answer the assistant's reply
    chars = ""    # every character a prompt or an answer can hold (for CharTokenizer.with_chars)

    def size(self):
        """How many distinct problems the task has, both splits together."""
        raise NotImplementedError

    def sample(self, rng):
        """One problem drawn with `rng` (a random.Random) from the whole task, either split."""
        raise NotImplementedError

    def all_keys(self):
        """The split key of every distinct problem, one per problem (problems may share a key),
        made by the same code as the problems' keys: the counts of the splits depend on it."""
        raise NotImplementedError

    # -- drawing problems ---------------------------------------------------------------------

    def max_problems(self, split):
        """How many distinct problems `split` holds (counted once, then remembered)."""
        check_split(split)
        counts = getattr(self, "_split_counts", None)
        if counts is None:
            counts = {s: 0 for s in SPLITS}
            for key in self.all_keys():
                counts[split_of(key)] += 1
            self._split_counts = counts
        return counts[split]

    def has_problems(self, split, num):
        """Whether `split` holds at least `num` problems (counting them only when in doubt)."""
        if self.size() > COUNT_ALWAYS_BELOW and num <= self.size() // 20:
            return True
        return num <= self.max_problems(split)

    def problems(self, split, num, seed=0):
        """`num` distinct problems of `split`, the same list for the same (split, num, seed);
        drawing more with the same seed keeps the first ones (the list only grows)."""
        check_split(split)
        check_num(num)
        if not self.has_problems(split, num):
            raise MicroGPTError(f"task {self.name} has only {self.max_problems(split)} {split} problems, "
                                f"fewer than the {num} asked for: ask for at most that many")
        # seeded by the task's name too, so two tasks with one seed draw independent streams
        rng = random.Random(f"{self.name}/{seed}")
        out, seen, misses = [], set(), 0
        while len(out) < num:
            p = self.sample(rng)
            if p.prompt in seen or split_of(p.key) != split:
                # a draw that keeps missing for 50x the task's size (odds e^-50) means that
                # all_keys() and the problems' keys disagree: a bug, better than a hang
                misses += 1
                if misses > 50 * self.size() + 1000:
                    raise RuntimeError(f"task {self.name}: {split} problems ran out before the count "
                                       f"of all_keys() said: its keys and its problems' keys disagree")
                continue
            misses = 0
            seen.add(p.prompt)
            out.append(p)
        return out

    # -- checking answers ---------------------------------------------------------------------

    def reward(self, problem, response):
        """1.0 for a correct response, else 0.0 (no partial credit). Surrounding spaces and
        newlines do not count: the response is compared after .strip()."""
        return 1.0 if response.strip() == problem.answer else 0.0

    def is_correct(self, problem, response):
        return self.reward(problem, response) == 1.0

    def conversation(self, problem):
        """The problem as a conversation: the prompt from the user, the answer from the assistant."""
        return {"messages": [{"role": "user", "content": problem.prompt},
                             {"role": "assistant", "content": problem.answer}]}


def make_conversations(task, split, num, seed=0):
    """`num` conversations of `split` (for `microgpt tasks make`); names tasks have none."""
    if not task.chat:
        raise no_conversations(task.name)
    return [task.conversation(p) for p in task.problems(split, num, seed)]


def no_conversations(name):
    return MicroGPTError(f"task {name} has no conversations (its samples are plain names, not chats): "
                         f"use a chat task such as add, reverse or count")


def check_split(split):
    if split not in SPLITS:
        raise MicroGPTError(f"unknown split {split!r}: use train or test")


def check_num(num):
    if not isinstance(num, int) or isinstance(num, bool) or num < 0:
        raise MicroGPTError(f"the number of problems must be a whole number >= 0, not {num!r}")


def check_words(words, task, max_len=None):
    """The distinct words of at most `max_len` letters, sorted (so the task does not depend on
    the file's order), each one usable in a prompt: non-empty and without spaces."""
    words = list(words)
    for w in words:
        if not isinstance(w, str) or not w or any(c.isspace() for c in w):
            raise MicroGPTError(f"task {task}: word {w!r} is empty or holds a space: "
                                f"use single words (one per line in the data file)")
    words = sorted(set(words))
    if max_len is not None:
        words = [w for w in words if len(w) <= max_len]
    if not words:
        raise MicroGPTError(f"task {task} has no words to use" +
                            (f" of at most {max_len} letters: allow longer words"
                             if max_len is not None else ": give a non-empty list of words"))
    return words


_names_cache = {}


def default_words():
    """The names of the names data set (found as `microgpt train` finds it), read once."""
    from microgpt.data.text import default_names_path, split_docs
    from microgpt.files import read_text
    path = default_names_path()
    if path not in _names_cache:
        _names_cache[path] = split_docs(read_text(path))
    return _names_cache[path]
