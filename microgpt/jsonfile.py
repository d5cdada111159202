"""JSON from bytes nobody vouches for (a checkpoint's config.json, a safetensors header).

Strict where Python's json module is lenient: NaN and Infinity are refused (our files never hold
them), a key given twice is refused (json keeps the last one silently), and nesting deep enough
to exhaust the interpreter's stack (json.loads raises RecursionError) is an error like any other.
Every problem becomes the caller's own error, so each file names itself in the message.
"""

import json
import re


class _Refused(ValueError):
    pass


def _no_constants(name):
    raise _Refused(f"it holds {name}, which JSON has no number for")


def _int(digits):
    # Python >= 3.11 refuses more than 4300 digits itself; before that, int() of a long enough
    # string of digits takes minutes (it is quadratic)
    if len(digits) > 4300:
        raise _Refused("a number in it has too many digits")
    return int(digits)


def _no_duplicates(pairs):
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Refused(f"the key {short(dup)} appears twice in one object")
    return out


# "\ud800" alone is valid JSON syntax but no Unicode text: a str holding it cannot be encoded
# (a tokenizer's character, a report page), so such a file is refused as the library refuses it
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _check_strings(value):
    stack = [value]  # (a loop, not recursion: the document may be nested nearly to the stack's depth)
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused("a string in it holds a lone UTF-16 surrogate, which is not text") from None
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())


def loads(raw, bad):
    """The JSON value of `raw` (bytes, UTF-8). `bad(why)` makes the exception to raise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad(f"not UTF-8 text: bad byte at offset {e.start}") from None
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_int=_int, object_pairs_hook=_no_duplicates)
        if _SURROGATE.search(text):
            _check_strings(value)
        return value
    except _Refused as e:
        raise bad(str(e)) from None
    except RecursionError:
        raise bad("nested too deeply") from None
    except json.JSONDecodeError as e:
        raise bad(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError:  # an integer with more digits than Python converts (3.11+)
        raise bad("a number in it has too many digits") from None


def short(value, width=40):
    """A value for an error message: its repr cut to `width` characters. A container is named by
    its type alone: the repr of a hostile one could be huge or nested past the stack's depth."""
    if isinstance(value, (list, dict)):
        return f"a JSON {'array' if isinstance(value, list) else 'object'}"
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than str() converts
        return "a very long number"
    return text if len(text) <= width else text[:width - 3] + "..."
