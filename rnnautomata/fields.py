"""One checker for every study section: raw TOML values against a frozen dataclass's type hints.

Both study families (``rnnautomata.config`` for automata studies, ``rnnautomata.icl.config`` for
icl/grokking) build their sections with :func:`build_section`; each keeps its own value rules
(allowed choices, positive numbers) and passes them in as ``check``. Every problem is a
:class:`~rnnautomata.errors.ConfigError` whose one line names the field, what it must be and
what it got.

Supported hints: ``bool``, ``int``, ``float`` (an int is accepted and converted; NaN and ±inf are
refused: every float field must be finite), ``str``,
``tuple[int, ...]`` / ``tuple[float, ...]`` (a non-empty TOML array), ``X | None`` and unions
such as ``str | tuple[float, ...]``.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, fields
from typing import Any, Callable, Iterable, Mapping, Sequence

from rnnautomata.errors import ConfigError

__all__ = ["coerce_field", "build_section", "build_study", "positive_numbers", "show_value"]

_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def show_value(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters so that an error stays a short line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(annotation: Any) -> str:
    if annotation in _NAMES:
        return _NAMES[annotation]
    if typing.get_origin(annotation) is tuple:
        elem = typing.get_args(annotation)[0]
        return "a non-empty list of " + {int: "integers", float: "finite numbers"}.get(elem, str(elem))
    return str(annotation)  # pragma: no cover


def coerce_field(key: str, value: Any, annotation: Any) -> Any:
    """``value`` checked against the resolved type hint ``annotation``, converted where TOML is
    looser than the hint (int for float, array for tuple).

    Examples
    --------
    >>> coerce_field("train.lr", 1, float)
    1.0
    >>> coerce_field("task.test_lengths", [100, 1000], tuple[int, ...])
    (100, 1000)
    >>> coerce_field("train.epochs", 1.5, int)
    Traceback (most recent call last):
    ...
    rnnautomata.errors.ConfigError: train.epochs must be an integer (got 1.5)
    """
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None:
            if len(options) < len(args):
                return None
            raise ConfigError(f"{key} may not be empty")
        for option in options:
            try:
                return coerce_field(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{key} must be {' or '.join(_describe(o) for o in options)} (got {show_value(value)})")
    if value is None:
        raise ConfigError(f"{key} may not be empty")
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
            if math.isfinite(number):
                return number
    elif annotation is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(annotation) is tuple:
        elem = args[0]
        if isinstance(value, (list, tuple)) and value:
            try:
                return tuple(coerce_field(key, v, elem) for v in value)
            except ConfigError:
                pass
    else:  # pragma: no cover - a dataclass field of a type this module does not know
        raise TypeError(f"{key}: unsupported field type {annotation!r}")
    raise ConfigError(f"{key} must be {_describe(annotation)} (got {show_value(value)})")


def build_section(
    cls: type,
    raw: Any,
    prefix: str,
    check: Callable[[str, Any], None] | None = None,
) -> Any:
    """Build the frozen dataclass ``cls`` from the TOML table ``raw`` of section ``[prefix]``.

    Unknown fields, values of the wrong type, and values ``check(key, value)`` rejects are
    ConfigErrors; fields not in ``raw`` keep the dataclass's defaults.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[{prefix}] must be a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(known), key=str)
    if unknown:
        name = unknown[0] if isinstance(unknown[0], str) and unknown[0].isidentifier() else show_value(unknown[0])
        raise ConfigError(f"unknown field {prefix}.{name}; allowed in [{prefix}]: {', '.join(known)}")
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}"
        kwargs[name] = coerce_field(key, value, hints[name])
        if check is not None:
            check(key, kwargs[name])
    return cls(**kwargs)


def positive_numbers(choices: Mapping[str, tuple], nonnegative: Iterable[str] = ()) -> Callable[[str, Any], None]:
    """The field rule most sectioned studies share, as a ``check`` for :func:`build_section`: a key
    in ``choices`` takes one of its listed values; every number is positive, except the keys in
    ``nonnegative``, which may be 0."""
    nonneg = frozenset(nonnegative)

    def check(key: str, value: Any) -> None:
        if key in choices and value not in choices[key]:
            raise ConfigError(f"{key} = {value!r} is not allowed; choose one of: {', '.join(choices[key])}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if key in nonneg and value < 0:
                raise ConfigError(f"{key} must be ≥ 0 (got {value!r})")
            if key not in nonneg and value <= 0:
                raise ConfigError(f"{key} must be positive (got {value!r})")

    return check


def build_study(cls: type, raw: Any, sections: Sequence[str], check: Callable[[str, Any], None] | None = None,
                *, merge_defaults: bool = False, **fixed: Any) -> Any:
    """The frozen study dataclass ``cls`` (top-level ``kind``, ``name`` and one dataclass per section)
    from a parsed study TOML.

    A ``[sweep]`` table is allowed and ignored (``rnnautomata sweep`` reads it). With
    ``merge_defaults``, each section starts from ``cls()``'s section (a study's own section defaults)
    rather than the section class's. ``fixed`` are further keyword arguments of ``cls`` (``kind``).
    Every problem is a one-line ConfigError naming the key.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError("a study must be a TOML table")
    unknown = sorted(set(raw) - {"kind", "name", "sweep", *sections}, key=str)
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in the study; allowed: kind, name, {', '.join(sections)}")
    defaults = cls()
    kwargs: dict[str, Any] = dict(fixed)
    if "name" in raw:
        if not isinstance(raw["name"], str) or not raw["name"]:
            raise ConfigError(f"name must be a non-empty string (got {raw['name']!r})")
        kwargs["name"] = raw["name"]
    for section in sections:
        sub = raw.get(section, {})
        if merge_defaults and isinstance(sub, Mapping):
            sub = {**asdict(getattr(defaults, section)), **sub}
        kwargs[section] = build_section(type(getattr(defaults, section)), sub, section, check)
    return cls(**kwargs)
