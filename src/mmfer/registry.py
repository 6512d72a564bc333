"""One small generic registry for datasets, feature extractors and models.

Examples
--------
>>> MODELS = Registry("model")
>>> @MODELS.register("tiny")
... def make_tiny(**cfg): ...
>>> MODELS.get("tiny")  # doctest: +SKIP
"""

from __future__ import annotations

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

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` (case-insensitive)."""
        try:
            return self._items[name.lower()]
        except (KeyError, AttributeError):
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


CORPORA: Registry[Callable[..., object]] = Registry("corpus")
FEATURES: Registry[type] = Registry("feature extractor")
MODELS: Registry[type] = Registry("model")
SPLITTERS: Registry[Callable[..., object]] = Registry("protocol")
