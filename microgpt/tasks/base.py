"""What every task offers: problems drawn from a seed, and a check of an answer.

A task makes problems (a prompt and the answer that earns the reward) and checks a model's
response. The same check serves three stages: supervised fine-tuning trains on the answers,
evaluation counts how often a sample is right (pass@k), and RL uses it as the reward.

Train and test never overlap, whatever the seeds and counts: a problem's split is decided by
a stable hash of its canonical key ("add:123+456"), not by the draw, so about 10% of all
problems are test problems, always the same ones. Drawing `num` problems of a split walks a
random stream seeded by (task, seed) and keeps the candidates of that split, each once.

Conversations (`make_conversations`, for `microgpt tasks make`): conversation i begins with
problem i, and a share of them (`--multi-turn X`) goes on for a 2nd and maybe a 3rd exchange,
drawn from the same split: every problem of a train conversation is a train problem, whichever
turn. A chat session asks question after question, and a model fine-tuned on single exchanges
only answers badly once earlier turns stand before the question (measured: pass@1 0.75 on the
1st turn, 0.07 on the 2nd). X = 0.5 keeps every conversation teaching the 1st turn, half of them
a 2nd and a quarter a 3rd where the block leaves room (a quarter taught the later turns less).
The default stays single exchanges: with learned positions a short fine-tune on multi-turn data
lost `add` on the 1st turn (0.59 -> 0.02: its digits no longer sit at fixed places), where
`--pos rope` lost nothing (docs/post-training.md).
"""

import hashlib
import random
from dataclasses import dataclass
from typing import Optional

from microgpt.data.chat_template import CHAT_SPECIAL_TOKENS
from microgpt.errors import MicroGPTError

SPLITS = ("train", "test")
TEST_PERCENT = 10  # share of every task's problems that belong to the test split

# Counting a split means hashing every problem of the task (~1 s for add:3's 810,000). A task
# with more than this many problems is counted only when `num` is over 5% of them: below that,
# its test split (10% +- a few hundred problems, by the hash) is sure to hold enough.
COUNT_ALWAYS_BELOW = 100_000

MULTI_TURN = 0.0  # share of the conversations `tasks make` writes with 2 or 3 exchanges (even odds)
FIT_BLOCK = 32    # the block size they are made to fit by default: the README's chain fine-tunes with it
TRIES = 10        # draws of a further exchange before a conversation stays shorter


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

    def draw(self, split, rng):
        """One problem of `split` drawn with `rng` (a candidate of the other split is drawn again)."""
        for _ in range(50 * self.size() + 1000):  # odds of missing that often: e^-50 (see problems)
            p = self.sample(rng)
            if split_of(p.key) == split:
                return p
        raise RuntimeError(f"task {self.name}: no {split} problem in {50 * self.size() + 1000} draws")

    def more_problems(self, split, n, rng, fits=None, avoid=()):
        """Up to `n` problems of `split` to ask in one conversation, drawn with `rng`: each one's
        prompt differs from those in `avoid` and before it, and fits(the list with it) holds; a
        candidate that fails is drawn again, TRIES times at most, after which the list stays shorter."""
        out, asked = [], set(avoid)
        while len(out) < n:
            for _ in range(TRIES):
                p = self.draw(split, rng)
                if p.prompt not in asked and (fits is None or fits(out + [p])):
                    out.append(p)
                    asked.add(p.prompt)
                    break
            else:
                break
        return out

    # -- checking answers ---------------------------------------------------------------------

    def reward(self, problem, response):
        """1.0 for a correct response, else 0.0 (no partial credit). Surrounding spaces and
        newlines do not count: the response is compared after .strip()."""
        return 1.0 if response.strip() == problem.answer else 0.0

    def is_correct(self, problem, response):
        return self.reward(problem, response) == 1.0

    def conversation(self, *problems):
        """The problems as one conversation: each prompt from the user, then its answer from the
        assistant, in order (one problem: a single exchange)."""
        return {"messages": [{"role": role, "content": text} for p in problems
                             for role, text in (("user", p.prompt), ("assistant", p.answer))]}


def make_conversations(task, split, num, seed=0, multi_turn=MULTI_TURN, block_size=FIT_BLOCK):
    """`num` conversations of `split` (for `microgpt tasks make`); names tasks have none.

    Conversation i begins with problem i of task.problems(split, num, seed). A share `multi_turn`
    of them (each decided by a stream seeded by task and seed) asks 1 or 2 more problems of the
    split (of any of a mixture's tasks), each answered right; a further exchange is added only
    while the conversation fits block_size + 1 tokens with a character tokenizer (a byte-level
    BPE's tokens are as many or fewer on ASCII text), so none is cut in fine-tuning with that
    --block-size. Drawing more keeps the first ones."""
    if not task.chat:
        raise no_conversations(task.name)
    if isinstance(multi_turn, bool) or not isinstance(multi_turn, (int, float)) or not 0 <= multi_turn <= 1:
        raise MicroGPTError(f"--multi-turn must be a share in [0, 1], not {multi_turn!r}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise MicroGPTError(f"--block-size must be a whole number >= 1, not {block_size!r}")
    first = task.problems(split, num, seed)
    if not multi_turn:
        return [task.conversation(p) for p in first]
    rng = random.Random(f"{task.name}/{seed}/turns")
    out = []
    for p in first:
        asked = [p]
        for _ in range(rng.choice((1, 2)) if rng.random() < multi_turn else 0):
            if chat_tokens(asked) + len(CHAT_SPECIAL_TOKENS) + 1 > block_size + 1:
                break  # no room for even the shortest exchange (the specials and a character)
            fits = lambda extra, asked=asked: chat_tokens(asked + extra) <= block_size + 1
            got = task.more_problems(split, 1, rng, fits, avoid={q.prompt for q in asked})
            if not got:
                break
            asked = asked + got
        out.append(task.conversation(*asked))
    return out


def chat_tokens(problems):
    """The tokens of the problems' conversation with the chat template and a character tokenizer:
    <|bos|>, then per exchange the 4 chat special tokens and one token per character
    (data/chat_template.py; a test checks it against render_conversation)."""
    return 1 + sum(len(CHAT_SPECIAL_TOKENS) + len(p.prompt) + len(p.answer) for p in problems)


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
