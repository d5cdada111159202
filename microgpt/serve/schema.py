"""The OpenAI request bodies, checked field by field before any work.

Anything wrong is an APIError: the HTTP status and OpenAI's error body
    {"error": {"message": ..., "type": "invalid_request_error", "param": ..., "code": ...}}
with a message that names the field and what to send instead. Numbers are checked for type
and range (a bool is not a number; NaN and Infinity are not JSON here). A field we do not
know is refused, as OpenAI refuses it, rather than silently ignored; fields clients send at
their neutral value (presence_penalty 0, user, ...) are accepted.
"""

import json
import math
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

MAX_BODY_BYTES = 1 << 20  # a request body larger than this is refused (413)


class APIError(Exception):
    def __init__(self, status, message, param=None, code=None, type="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type

    def body(self):
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad(message, param=None, code=None):
    return APIError(400, message, param, code)


@dataclass
class Limits:
    """The bounds of one request: choices, tokens per choice and in all, logprobs alternatives."""
    max_n: int = 16
    max_tokens: int = 2048          # per choice
    max_request_tokens: int = 8192  # n x max_tokens (or the context where max_tokens is not given)
    max_top_logprobs: int = 20
    max_stop: int = 4


@dataclass
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_tokens: Optional[int] = None
    seed: Optional[int] = None
    stop: Tuple[str, ...] = ()
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class Request:
    model: str
    sampling: Sampling
    messages: Optional[List[dict]] = None          # chat
    prompts: List[object] = field(default_factory=list)  # completions: str or [token ids] each


def parse_body(raw):
    """The JSON object of a request body (400 when it is not one)."""
    if len(raw) > MAX_BODY_BYTES:
        raise APIError(413, f"the request body is {len(raw)} bytes, more than {MAX_BODY_BYTES}: send less",
                       code="request_too_large")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise bad(f"the request body is not valid JSON ({str(e)[:120]}): send one JSON object",
                  code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad(f"the request body must be a JSON object, not {_kind(body)}", code="invalid_json")
    return body


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _kind(x):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(x), type(x).__name__)


def number(body, name, default, lo, hi, integer=False, lo_open=False):
    v = body.get(name)
    if v is None:
        return default
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or (isinstance(v, float) and not math.isfinite(v)):
        raise bad(f"{name} must be {'a whole number' if integer else 'a number'}, not {_kind(v)}", name,
                  "invalid_type")
    if v < lo or v > hi or (lo_open and v == lo):
        what = f"{'greater than' if lo_open else 'at least'} {lo}" + (f" and at most {hi}" if hi != math.inf else "")
        raise bad(f"{name} is {v}: it must be {what}", name, "out_of_range")
    return v


def boolean(body, name, default=False):
    v = body.get(name)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad(f"{name} must be true or false, not {_kind(v)}", name, "invalid_type")
    return v


COMMON = {"model", "temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "n", "stream", "stream_options",
          "logprobs", "user", "presence_penalty", "frequency_penalty", "logit_bias"}
CHAT = COMMON | {"messages", "top_logprobs", "max_completion_tokens"}
COMPLETIONS = COMMON | {"prompt", "echo", "suffix", "best_of"}
NEUTRAL = {"presence_penalty": (0, 0.0, None), "frequency_penalty": (0, 0.0, None), "logit_bias": ({}, None),
           "echo": (False, None), "suffix": (None, ""), "best_of": (None, 1)}


def _common(body, allowed, limits):
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad(f"unrecognized request argument supplied: {unknown[0]} (this server takes "
                  f"{', '.join(sorted(allowed))})", unknown[0], "unknown_parameter")
    for name, neutral in NEUTRAL.items():
        if name in body and not any(body[name] == v and type(body[name]) is type(v) for v in neutral):
            raise bad(f"{name} {body[name]!r} is not supported by this server: leave it out", name,
                      "unsupported_parameter")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad("model is required: the id of a served model (GET /v1/models lists them)", "model",
                  "missing_model" if model is None else "invalid_type")
    s = Sampling()
    s.temperature = number(body, "temperature", 1.0, 0, 2)
    s.top_p = number(body, "top_p", 1.0, 0, 1, lo_open=True)
    s.top_k = number(body, "top_k", 0, 0, math.inf, integer=True)
    s.seed = number(body, "seed", None, -(2 ** 63), 2 ** 64 - 1, integer=True)
    s.n = number(body, "n", 1, 1, limits.max_n, integer=True)
    s.stream = boolean(body, "stream")
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, dict) or set(opts) - {"include_usage"}:
            raise bad('stream_options must be {"include_usage": true|false}', "stream_options", "invalid_type")
        if not s.stream:
            raise bad("stream_options is only allowed with stream: true", "stream_options", "invalid_value")
        s.include_usage = boolean(opts, "include_usage")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or not all(isinstance(x, str) and x for x in stops):
        raise bad("stop must be a non-empty string or a list of them", "stop", "invalid_type")
    if len(stops) > limits.max_stop:
        raise bad(f"stop has {len(stops)} strings: at most {limits.max_stop}", "stop", "out_of_range")
    s.stop = tuple(stops)
    return model, s


def _max_tokens(body, s, names, limits):
    for name in names:
        v = number(body, name, None, 1, limits.max_tokens, integer=True)
        if v is not None:
            s.max_tokens = v
    if s.n * (s.max_tokens or 1) > limits.max_request_tokens:
        raise bad(f"n x max_tokens = {s.n * s.max_tokens} tokens, more than {limits.max_request_tokens} in one "
                  f"request: ask for fewer", "max_tokens", "out_of_range")


def chat_request(body, limits):
    model, s = _common(body, CHAT, limits)
    _max_tokens(body, s, ("max_tokens", "max_completion_tokens"), limits)
    s.logprobs = boolean(body, "logprobs")
    s.top_logprobs = number(body, "top_logprobs", 0, 0, limits.max_top_logprobs, integer=True)
    if body.get("top_logprobs") is not None and not s.logprobs:
        raise bad("top_logprobs needs logprobs: true", "top_logprobs", "invalid_value")
    return Request(model, s, messages=chat_messages(body.get("messages")))


def chat_messages(messages):
    """OpenAI messages -> the template's [{"role", "content"}] (content parts joined, developer =
    system, a message's name ignored); the order of roles is checked by the chat template."""
    if not isinstance(messages, list) or not messages:
        raise bad("messages must be a non-empty list of {\"role\": ..., \"content\": ...}", "messages",
                  "invalid_type")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad(f'{where} must be an object {{"role": ..., "content": ...}}', where, "invalid_type")
        role, content = m["role"], m.get("content")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant"):
            raise bad(f"{where} has role {m['role']!r}: use system, user or assistant", where, "invalid_value")
        if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                       for p in content):
                raise bad(f"{where}.content: only text parts are understood by this model", where, "invalid_value")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise bad(f"{where}.content must be a string, not {_kind(content)}", where, "invalid_type")
        out.append({"role": role, "content": content})
    return out


def completion_request(body, limits):
    model, s = _common(body, COMPLETIONS, limits)
    _max_tokens(body, s, ("max_tokens",), limits)
    lp = number(body, "logprobs", None, 0, limits.max_top_logprobs, integer=True)
    s.logprobs, s.top_logprobs = lp is not None, lp or 0
    return Request(model, s, prompts=prompts(body.get("prompt", "")))


def prompts(p):
    """A prompt, as OpenAI takes it: a string, a list of strings, a list of token ids, or a list of those."""
    def ids(x):
        return isinstance(x, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
    if isinstance(p, str) or ids(p):
        return [p]
    if isinstance(p, list) and p and all(isinstance(x, str) or ids(x) for x in p):
        return list(p)
    raise bad("prompt must be a string, a list of strings, a list of token ids or a list of such lists",
              "prompt", "invalid_type")
