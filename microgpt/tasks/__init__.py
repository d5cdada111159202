"""Tasks with checkable answers: the problems of supervised fine-tuning, RL and evaluation.

    task = get_task("add")                       # or "add:4", "reverse", "count", "add,reverse,count"
    train = task.problems("train", 1000, seed=0)   # Problem(task, prompt, answer, key)
    task.reward(train[0], " 579 ")                 # 1.0 or 0.0; the RL reward and the eval check
    task.conversation(train[0])                    # {"messages": [user prompt, assistant answer]}
    task.conversation(*train[:3])                  # three exchanges in a row: a multi-turn chat
    make_conversations(task, "train", 1000)        # what `tasks make` writes: a share multi-turn

Names tasks (`names-ending:a`, `names-length:6-8`) have no chat: their reward judges a name the
seed's names model writes. See base.py for how train and test are kept apart.
"""

import re

from microgpt.errors import MicroGPTError
from microgpt.tasks.add import MAX_DIGITS, Add
from microgpt.tasks.base import SPLITS, TEST_PERCENT, Problem, Task, make_conversations, split_of
from microgpt.tasks.count import Count
from microgpt.tasks.mixture import Mixture
from microgpt.tasks.names import NamesEnding, NamesLength
from microgpt.tasks.reverse import Reverse

__all__ = [
    "SPLITS",
    "TASKS",
    "TEST_PERCENT",
    "Add",
    "Count",
    "Mixture",
    "NamesEnding",
    "NamesLength",
    "Problem",
    "Reverse",
    "Task",
    "describe_tasks",
    "get_task",
    "make_conversations",
    "split_of",
]

# spec -> what it is, for help text; the first word of each line is how it is written
TASKS = {
    "add": f"add[:D]  the sum of two D-digit numbers (D = 1..{MAX_DIGITS}, default 3): user '123+456', "
           f"assistant '579'",
    "reverse": "reverse[:L]  spell a name backwards (names of at most L letters): user 'reverse emma', "
               "assistant 'amme'",
    "count": "count[:L]  how often a letter appears in a name: user 'count a in anna', assistant '2'",
    "names-ending": "names-ending:SUFFIX  names model, no chat: reward 1 for a name ending with SUFFIX",
    "names-length": "names-length:LO-HI  names model, no chat: reward 1 for a name of LO to HI letters",
}
KNOWN = "add[:D], reverse[:L], count[:L], names-ending:SUFFIX, names-length:LO-HI, or several joined by commas"


def describe_tasks():
    """The tasks, one per line, for `--help`."""
    return "\n".join(TASKS.values())


def get_task(spec, words=None):
    """The task a spec names: `add`, `add:4`, `reverse`, `count:8`, `names-ending:a`,
    `names-length:6-8`, or a comma-separated mixture `add,reverse,count`. `words` replaces the
    names data set for reverse and count."""
    if not isinstance(spec, str) or not spec.strip():
        raise MicroGPTError(f"no task given: name one of {KNOWN}")
    specs = [s.strip() for s in spec.split(",")]
    if not all(specs):
        raise MicroGPTError(f"task spec {spec!r} has an empty part: join task names with single commas")
    tasks = [_one_task(s, words) for s in specs]
    return tasks[0] if len(tasks) == 1 else Mixture(tasks)


def _one_task(spec, words):
    name, colon, param = spec.partition(":")
    if name == "add":
        return Add(_whole(spec, param, colon, 1, MAX_DIGITS, "a number of digits", default=3))
    if name == "reverse":
        return Reverse(_whole(spec, param, colon, 1, None, "a longest word length", default=None), words)
    if name == "count":
        return Count(_whole(spec, param, colon, 1, None, "a longest word length", default=None), words)
    if name == "names-ending":
        if not param or any(c.isspace() for c in param):
            raise MicroGPTError(f"task {spec!r} needs a suffix without spaces: e.g. names-ending:a")
        return NamesEnding(param)
    if name == "names-length":
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", param)
        lo, hi = (int(m.group(1)), int(m.group(2) or m.group(1))) if m else (0, 0)
        if not 1 <= lo <= hi:
            raise MicroGPTError(f"task {spec!r} needs lengths LO-HI with 1 <= LO <= HI: e.g. names-length:6-8")
        return NamesLength(lo, hi)
    raise MicroGPTError(f"unknown task {spec!r}: use {KNOWN}")


def _whole(spec, param, colon, lo, hi, what, default):
    """The whole-number parameter after the colon (the default without one), checked in lo..hi."""
    if not colon:
        return default
    n = int(param) if re.fullmatch(r"[0-9]+", param) else None
    if n is None or n < lo or (hi is not None and n > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        name = spec.partition(":")[0]
        raise MicroGPTError(f"task {spec!r}: the part after the colon must be {what}, a whole number "
                            f"{bounds}: e.g. {name}:{min(4, hi or 4)}")
    return n
