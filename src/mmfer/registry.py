"""One small generic registry for datasets, feature extractors and models.

Examples
--------
>>> MODELS = Registry("model")
>>> @MODELS.register("tiny")
... def make_tiny(**cfg): ...
>>> MODELS.get("tiny")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from mmfer.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping whose lookups fail with the list of valid names.

    Parameters
    ----------
    kind
        What is registered ("model", "corpus", ...); used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        #: name -> module that registers it when imported (see :meth:`provide`).
        self._providers: dict[str, str] = {}

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering an object under ``name`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            key = (name or getattr(obj, "__name__", "")).lower()
            if not key:
                raise ValueError(f"cannot infer a {self.kind} name for {obj!r}")
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = obj
            return obj

        return deco

    def provide(self, name: str, module: str) -> None:
        """Declare that importing ``module`` registers ``name``; :meth:`get` imports it on first use.

        Lets a package outside the core (e.g. :mod:`mmfer.demo`) own a registered name
        without the core importing it.
        """
        self._providers[name.lower()] = module

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` (case-insensitive)."""
        key = name.lower() if isinstance(name, str) else name
        if key not in self._items and key in self._providers:
            importlib.import_module(self._providers[key])
        try:
            return self._items[key]
        except (KeyError, AttributeError):
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names (including provided ones not imported yet), sorted."""
        return sorted(set(self._items) | set(self._providers))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name.lower() in self._items or name.lower() in self._providers)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(set(self._items) | set(self._providers))


CORPORA: Registry[Callable[..., object]] = Registry("corpus")
# The demo corpus lives outside mmfer.data (it generates media); registered on first use.
CORPORA.provide("synthetic", "mmfer.demo.corpus")
FEATURES: Registry[type] = Registry("feature extractor")
MODELS: Registry[type] = Registry("model")
SPLITTERS: Registry[Callable[..., object]] = Registry("protocol")
