"""A config dataclass to and from JSON, each field's type checked (so a hand-edited or hostile
config.json is a clear error, not a crash later), and the one check of every numeric option."""

import math
import typing
from dataclasses import asdict, fields

from microgpt.errors import MicroGPTError
from microgpt.jsonfile import short


def require(flag, value, rule):
    """One check for every numeric option of every command: `rule` is positive (> 0),
    nonneg (>= 0) or fraction ([0, 1)); NaN and infinities are refused everywhere."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        (isinstance(value, int) or math.isfinite(value))  # (an int is finite, and may be too large for a float)
    if rule == "positive":
        ok, want = ok and value > 0, "> 0"
    elif rule == "nonneg":
        ok, want = ok and value >= 0, ">= 0"
    else:
        ok, want = ok and 0 <= value < 1, "in [0, 1)"
    if not ok:
        raise MicroGPTError(f"--{flag.replace('_', '-')} must be a finite number {want}, got {short(value)}")


class JSONConfig:
    """to_dict / from_dict for a config dataclass; from_dict checks each field's type."""

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        if not isinstance(d, dict):
            raise ValueError(f"{cls.__name__} must be a JSON object")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in fields(cls):
            if f.name in d:
                kwargs[f.name] = _checked(cls.__name__, f.name, hints[f.name], d[f.name])
        return cls(**kwargs)


def _checked(owner, name, typ, v):
    optional = typing.get_origin(typ) is typing.Union and type(None) in typing.get_args(typ)
    if optional:
        if v is None:
            return None
        typ = next(t for t in typing.get_args(typ) if t is not type(None))
    if isinstance(typ, type) and issubclass(typ, JSONConfig):
        return typ.from_dict(v)
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v) if abs(v) < 2 ** 1024 else math.inf  # (too large for a float: refused below)
    if type(v) is not typ or (typ is float and not math.isfinite(v)):
        raise ValueError(f"{owner}.{name} must be {typ.__name__}, got {short(v)}")
    return v
