"""Conversations: the JSONL format of post-training data, read with a clear error for every mistake.

One conversation per line, blank lines skipped:

    {"messages": [{"role": "user", "content": "123+456"}, {"role": "assistant", "content": "579"}]}

* "messages" is the object's only key, a non-empty list; a message has exactly the keys "role"
  ("system", "user" or "assistant") and "content" (a string, possibly empty);
* an optional first "system" message, then user and assistant messages alternating, starting
  with the user;
* training data ends with the assistant's reply (`last="assistant"`, the default); a prompt to
  answer ends with the user (`last="user"`); `last=None` allows either.

The chat template (chat_template.py) turns a conversation into tokens and a loss mask.
"""

import json

from microgpt.errors import MicroGPTError
from microgpt.files import atomic_write_bytes, read_bytes

ROLES = ("system", "user", "assistant")
SHAPE = '{"messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}'


def conversation_problem(conversation, last="assistant"):
    """What is wrong with a conversation (one phrase with its fix), or None if it is well formed."""
    if not isinstance(conversation, dict):
        return f"a conversation must be a JSON object like {SHAPE}, not {_kind(conversation)}"
    if set(conversation) != {"messages"}:
        return _keys_problem("the conversation", conversation, ["messages"])
    return messages_problem(conversation["messages"], last)


def messages_problem(messages, last="assistant"):
    """What is wrong with a list of messages, or None: see the rules in the module docstring."""
    if not isinstance(messages, list):
        return f'"messages" must be a list of messages, not {_kind(messages)}'
    if not messages:
        return '"messages" is empty: a conversation needs at least a user message'
    for i, m in enumerate(messages, 1):
        if not isinstance(m, dict):
            return f'message {i} must be an object {{"role": ..., "content": ...}}, not {_kind(m)}'
        if set(m) != {"role", "content"}:
            return _keys_problem(f"message {i}", m, ["role", "content"])
        if m["role"] not in ROLES:
            return f"message {i} has role {m['role']!r}: use system, user or assistant"
        if not isinstance(m["content"], str):
            return f"message {i} has content {_kind(m['content'])}: content must be a string"
    # an optional system message, then user, assistant, user, ...
    first = 1 if messages[0]["role"] == "system" else 0
    if first == len(messages):
        return "there is only a system message: a conversation needs a user message after it"
    for i, m in enumerate(messages[first:], first):
        expected = "user" if (i - first) % 2 == 0 else "assistant"
        if m["role"] != expected:
            return (f"message {i + 1} is from {m['role']!r} where {expected!r} was expected: "
                    f"after an optional first system message, messages alternate user, assistant, user, ...")
    end = messages[-1]["role"]
    if last is not None and end != last:
        why = "training conversations end with the assistant's reply" if last == "assistant" else \
              "a prompt ends with the user's message, for the assistant to answer"
        return f"the last message is from the {end}: {why}"
    return None


def check_conversation(conversation, last="assistant", where="conversation"):
    """Raise MicroGPTError("<where>: <what is wrong>") for a malformed conversation."""
    problem = conversation_problem(conversation, last)
    if problem:
        raise MicroGPTError(f"{where}: {problem}")


def read_conversations(path, last="assistant"):
    """Every conversation of a JSONL file, each checked; the first bad line is a MicroGPTError
    naming the file, the line number and what is wrong with it."""
    return parse_conversations(read_bytes(path, "conversations file"), path, last)


def parse_conversations(raw, path, last="assistant"):
    """read_conversations of a file's bytes, already read (`path` names it in errors)."""
    try:
        text = raw.decode("utf-8-sig")  # -sig: a byte-order mark some editors write is not an error
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise MicroGPTError(f"{path}, line {line}: not UTF-8 text (bad byte at offset {e.start}): "
                            f"save the file as UTF-8") from None
    conversations = []
    # split on "\n" only: str.splitlines() would also split at characters such as U+2028
    # that JSON allows unescaped inside a string
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        conversations.append(_parse_line(line, path, n, last))
    if not conversations:
        raise MicroGPTError(f"conversations file {path} holds no conversations: give one JSON object "
                            f"per line, like {SHAPE}")
    return conversations


def _parse_line(line, path, n, last):
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise MicroGPTError(f"{path}, line {n}: not valid JSON ({e.msg}, column {e.colno}): "
                            f"each line must be one JSON object, like {SHAPE}") from None
    except RecursionError:
        raise MicroGPTError(f"{path}, line {n}: JSON nested too deeply: each line must be one "
                            f"conversation, like {SHAPE}") from None
    check_conversation(obj, last, where=f"{path}, line {n}")
    return obj


def dumps_conversations(conversations, last="assistant"):
    """JSONL text: one checked conversation per line (keys in the documented order, UTF-8 as is)."""
    lines = []
    for i, c in enumerate(conversations, 1):
        check_conversation(c, last, where=f"conversation {i}")
        clean = {"messages": [{"role": m["role"], "content": m["content"]} for m in c["messages"]]}
        lines.append(json.dumps(clean, ensure_ascii=False) + "\n")
    return "".join(lines)


def write_conversations(path, conversations, last="assistant"):
    """Write conversations as JSONL, atomically (a reader never sees half a file)."""
    text = dumps_conversations(conversations, last)
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as e:
        raise MicroGPTError(f"cannot write conversations to {path} ({e.strerror or e}): "
                            f"choose a path in a writable folder") from None


def _keys_problem(what, obj, keys):
    missing = [k for k in keys if k not in obj]
    extra = sorted(str(k) for k in obj if k not in keys)
    parts = ([f"lacks {', '.join(map(repr, missing))}"] if missing else []) + \
            ([f"has unexpected {', '.join(map(repr, extra))}"] if extra else [])
    return f"{what} {' and '.join(parts)}: it must have exactly the keys {', '.join(map(repr, keys))}"


def _kind(x):
    """The JSON name of a value's type, for messages."""
    if isinstance(x, dict):
        return "an object"
    if isinstance(x, list):
        return "a list"
    if isinstance(x, str):
        return "a string"
    if isinstance(x, bool):
        return "true/false"
    if isinstance(x, (int, float)):
        return "a number"
    if x is None:
        return "null"
    return type(x).__name__
