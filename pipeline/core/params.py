"""Reading ``params.yaml`` into typed blocks.

Each params block is a frozen dataclass (see :mod:`pipeline.core.config`) whose
field defaults are the only place a default value lives. :meth:`Block.from_block`
checks a block before any work starts: unknown keys (typos), the type of every
value and its range, each failure one line naming the key, the value and what
is allowed.

Field metadata understood here:

``ge``/``gt``/``le``/``lt``  numeric bounds
``content``                 False for params that cannot change a stage's output
                            bytes (worker counts, chunk sizes): they are left out
                            of the ``params.json`` a stage writes, so changing
                            them reruns the stage but nothing after it.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

from .errors import PipelineError

PARAMS_FILE = "params.yaml"


def _unique_keys_loader() -> type:
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML forbids it, DVC refuses
    it; a plain loader would keep the last value without a word)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key in seen:
                    raise PipelineError(f"key {key!r} is given twice, at lines {seen[key]} and "
                                        f"{key_node.start_mark.line + 1}; keep one")
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep)

    return UniqueKeys


def load_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """The params file as a mapping of blocks (``yaml.safe_load``'s types; a key given twice refused)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise PipelineError(f"params file {p} not found; run from the project folder or pass --params")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_unique_keys_loader()) or {}
    except PipelineError as exc:
        raise PipelineError(f"params file {p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"params file {p} is not valid YAML{_yaml_where(exc)}") from None
    except UnicodeDecodeError:
        raise PipelineError(f"params file {p} is not UTF-8 text; re-save it as UTF-8") from None
    if not isinstance(data, dict):
        raise PipelineError(f"params file {p} must be a mapping of blocks (dataset:, train:, ...)")
    return data


def _yaml_where(exc: Exception) -> str:
    """Where a YAML error is and what it is: the line where the broken construct starts (an
    unclosed bracket or quote) or else of the problem, 1-based as an editor shows it."""
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or problem is None:
        return f": {str(exc).splitlines()[0]}"
    context = getattr(exc, "context", None)
    return (f" at line {mark.line + 1}, column {mark.column + 1}" + (f" ({context})" if context else "")
            + f": {problem}; fix that line")


def spec(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
         le: float | None = None, lt: float | None = None, content: bool = True) -> Any:
    """A dataclass field with a checked range; list defaults are copied per instance."""
    meta = {"ge": ge, "gt": gt, "le": le, "lt": lt, "content": content}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def describe(hint: Any) -> str:
    """What a type hint allows, in a user's words."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a finite number"
    if hint is str:
        return "text"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        parts = [describe(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return text + " or null" if type(None) in args else text
    if origin is list:
        return f"a list of {_plural(args[0])}"
    if origin is dict:
        return f"a mapping of {_plural(args[0])} to {_plural(args[1])}"
    return str(hint)


def _plural(hint: Any) -> str:
    names = {bool: "true/false values", int: "whole numbers", float: "numbers", str: "texts"}
    if typing.get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_plural(a) for a in typing.get_args(hint))
    return names.get(hint, describe(hint))


class _Mismatch(Exception):
    pass


# YAML scalars each type accepts: no bool where a number is wanted, ints where a float is, never NaN
# or an infinity (.inf: a learning rate of .inf trains to NaN).
_SCALARS = {
    bool: lambda v: isinstance(v, bool),
    int: lambda v: isinstance(v, int) and not isinstance(v, bool),
    float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    str: lambda v: isinstance(v, str),
}


def coerce(value: Any, hint: Any) -> Any:
    """``value`` checked against ``hint`` (ints are accepted for floats); raises _Mismatch."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if hint in _SCALARS:
        if _SCALARS[hint](value):
            return float(value) if hint is float else value
        raise _Mismatch
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        return [coerce(v, args[0]) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return {coerce(k, args[0]): coerce(v, args[1]) for k, v in value.items()}
    raise TypeError(f"unsupported params type {hint}")


def _check_range(name: str, value: Any, meta: dict, shown: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    bounds = [(">=", meta.get("ge"), lambda v, b: v >= b), (">", meta.get("gt"), lambda v, b: v > b),
              ("<=", meta.get("le"), lambda v, b: v <= b), ("<", meta.get("lt"), lambda v, b: v < b)]
    for sign, bound, ok in bounds:
        if bound is not None and not ok(value, bound):
            allowed = " and ".join(f"{s} {b}" for s, b, _ in bounds if b is not None)
            raise PipelineError(f"{name} must be {allowed}, got {shown!r}; fix it in params.yaml (or -S {name}=...)")


class Block:
    """Base of the typed params blocks. Subclasses are frozen dataclasses with a ``BLOCK`` name."""

    BLOCK: typing.ClassVar[str] = ""

    @classmethod
    def from_block(cls, block: Any) -> "Block":
        """Check a params block (None = all defaults) and return the typed config."""
        if block is None:
            block = {}
        if not isinstance(block, dict):
            raise PipelineError(f"params block '{cls.BLOCK}' must be a mapping of keys to values, got {block!r}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(str(k) for k in block if k not in known)
        if unknown:
            raise PipelineError(f"unknown key(s) in params block '{cls.BLOCK}': {', '.join(unknown)}; "
                                f"known keys: {', '.join(known)}")
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in block:
                continue
            name = f"{cls.BLOCK}.{f.name}"
            try:
                values[f.name] = coerce(block[f.name], hints[f.name])
            except _Mismatch:
                raise PipelineError(f"{name} must be {describe(hints[f.name])}, got {block[f.name]!r}; "
                                    f"fix it in params.yaml (or -S {name}=...)") from None
            _check_range(name, values[f.name], dict(f.metadata), block[f.name])
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Checks across fields, beyond types and ranges; subclasses raise PipelineError."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def content_params(self) -> dict[str, Any]:
        """The params that can change this stage's output bytes (what its ``params.json`` records)."""
        return {f.name: v for f, v in zip(dataclasses.fields(self), self.to_dict().values())  # type: ignore[arg-type]
                if f.metadata.get("content", True)}
