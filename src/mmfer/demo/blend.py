"""Linear blending of the demo's frozen parameter dataclasses (expressions, voice profiles)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Self


class Blendable:
    """Mixin for a frozen dataclass of floats: :meth:`blend` interpolates every field."""

    def blend(self, other: Self, weight: float) -> Self:
        """Linear interpolation ``self -> other`` (``weight`` 0 -> self, 1 -> other), field by field."""
        a: dict[str, Any] = asdict(self)  # type: ignore[call-overload]
        b: dict[str, Any] = asdict(other)  # type: ignore[call-overload]
        return type(self)(**{k: a[k] + weight * (b[k] - a[k]) for k in a})
