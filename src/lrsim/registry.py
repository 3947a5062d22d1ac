"""One generic registry for rules, tasks, models, optimizers, observers and classifiers.

Entries are registered by name with a declared set of hyperparameters (`Param`: default and
valid range or choices). `Registry.create(name, **params)` validates the parameters against
those declarations and builds the object; an unknown name or a bad value raises `ConfigError`
naming what is allowed.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from lrsim.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Param:
    """A declared hyperparameter: default, type, and the values it may take.

    `low`/`high` bound numbers (inclusive unless `low_open`/`high_open`); `choices` lists the
    allowed values of a categorical parameter.
    """

    default: Any
    doc: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        if self.low is None and self.high is None:
            return type(self.default).__name__
        return f"{lo}{'-inf' if self.low is None else self.low}, " \
               f"{'inf' if self.high is None else self.high}{hi}"

    def check(self, owner: str, name: str, value: Any) -> Any:
        """Return `value` coerced to the parameter's type, or raise ConfigError."""
        where = f"{owner}: hyperparameter '{name}'"
        if self.choices is not None:
            if value not in self.choices:
                raise ConfigError(f"{where} = {value!r} is not allowed; use {self.describe()}")
            return value
        kind = type(self.default)
        if kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false, got {value!r}")
            return value
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be a finite number, got {value!r}")
            if kind is int and not isinstance(value, int):
                raise ConfigError(f"{where} must be an integer, got {value!r}")
            value = kind(value)
            bad_low = self.low is not None and (value <= self.low if self.low_open
                                                else value < self.low)
            bad_high = self.high is not None and (value >= self.high if self.high_open
                                                  else value > self.high)
            if bad_low or bad_high or value != value:
                raise ConfigError(f"{where} = {value!r} is out of range; allowed {self.describe()}")
            return value
        if not isinstance(value, kind):
            raise ConfigError(f"{where} must be of type {kind.__name__}, got {value!r}")
        return value


@dataclass
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    params: Mapping[str, Param] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""


class Registry(Generic[T]):
    """Name -> factory with declared, validated hyperparameters."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, factory: Callable[..., T] | None = None, *,
                 params: Mapping[str, Param] | None = None, **info: Any):
        """Register `factory` under `name`; usable as a decorator. `params` defaults to the
        factory's class attribute `params` if it has one."""

        def add(obj: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            declared = params if params is not None else getattr(obj, "params", {})
            doc = (obj.__doc__ or "").strip()
            self._entries[name] = Entry(name, obj, dict(declared), dict(info), doc)
            return obj

        return add(factory) if factory is not None else add

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown {self.kind} '{name}'{hint}; "
                              f"known: {', '.join(self.names())}")
        return self._entries[name]

    def resolve(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with `params`, each checked against its declaration."""
        entry = self.entry(name)
        params = dict(params or {})
        unknown = sorted(set(params) - set(entry.params))
        if unknown:
            allowed = ", ".join(sorted(entry.params)) or "none"
            raise ConfigError(f"{self.kind} '{name}' has no hyperparameter "
                              f"'{unknown[0]}'; allowed: {allowed}")
        out = {}
        for key, spec in entry.params.items():
            out[key] = spec.check(f"{self.kind} '{name}'", key, params.get(key, spec.default))
        return out

    def create(self, name: str, **params: Any) -> T:
        return self.entry(name).factory(**self.resolve(name, params))
