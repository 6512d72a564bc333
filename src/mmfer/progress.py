"""Heartbeat lines for logs: progress that shows when nobody watches a terminal.

tqdm bars turn themselves off when stderr is not a terminal (batch jobs, CI,
``nohup``), which left a long ``evaluate`` silent for many minutes. A
:class:`Heartbeat` writes a plain log line instead, at most every ``every_s``
seconds, with the elapsed time and an ETA::

    hb = Heartbeat(total=10, desc="cv fold", every_s=30.0)
    for fold in range(10):
        ...
        hb.tick(acc=0.52)
    # INFO mmfer.progress: cv fold 3/10 (30%) elapsed 4m12s ETA 9m48s acc=0.52

By default it is active only when stderr is not a terminal (a terminal shows
the tqdm bars); ``enabled=True`` forces it on. Lines go to the
``mmfer.progress`` logger at INFO, so they follow the application's logging
setup (the ``mmfer`` CLI logs INFO to stderr).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("mmfer.progress")

__all__ = ["Heartbeat", "format_duration", "stderr_is_terminal"]


def stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` is an interactive terminal (``False`` if it has no ``isatty``)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def format_duration(seconds: float) -> str:
    """Compact duration: ``42s``, ``4m12s``, ``2h05m``; ``?`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Heartbeat:
    """Rate-limited progress lines (elapsed, ETA) for a loop of ``total`` units.

    Parameters
    ----------
    total
        Number of units (folds, epochs, files); ``None`` or 0 if unknown (no ETA).
    desc
        What is counted, printed first (``"train epoch"``, ``"features"``).
    every_s
        Minimum seconds between two lines; ``0`` writes a line at every tick.
        The last unit (``done == total``) always gets a line.
    enabled
        ``None`` (default): on only when stderr is not a terminal. ``True`` /
        ``False`` force it.
    initial
        Units already done before this run (e.g. epochs restored from a
        checkpoint); they count for the position but not for the ETA rate.
    logger
        Where lines go (default ``mmfer.progress``), at INFO.
    clock
        Monotonic clock in seconds; tests pass a fake one instead of sleeping.

    Attributes
    ----------
    done
        Units counted so far (including ``initial``).
    lines
        Number of lines written.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        *,
        every_s: float = 30.0,
        enabled: bool | None = None,
        initial: int = 0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every_s < 0:
            raise ValueError(f"Heartbeat every_s must be >= 0, got {every_s}")
        self.total = total or None
        self.desc = desc
        self.every_s = float(every_s)
        self.enabled = (not stderr_is_terminal()) if enabled is None else bool(enabled)
        self.initial = int(initial)
        self.done = int(initial)
        self.lines = 0
        self.logger = logger or log
        self._clock = clock
        self._start = clock()
        self._last_line = self._start

    def elapsed(self) -> float:
        """Seconds since the heartbeat was created."""
        return self._clock() - self._start

    def eta(self) -> float:
        """Estimated seconds left from the mean time per unit of this run (``nan`` if unknown)."""
        ran = self.done - self.initial
        if self.total is None or ran <= 0:
            return math.nan
        return self.elapsed() / ran * max(self.total - self.done, 0)

    def message(self, **info: Any) -> str:
        """The line :meth:`tick` would write now."""
        if self.total is not None:
            pct = 100.0 * self.done / self.total
            pos = f"{self.done}/{self.total} ({pct:.0f}%)"
        else:
            pos = str(self.done)
        parts = [f"{self.desc} {pos}", f"elapsed {format_duration(self.elapsed())}"]
        if self.total is not None:
            parts.append(f"ETA {format_duration(self.eta())}")
        parts += [f"{k}={_fmt(v)}" for k, v in info.items() if v is not None]
        return " ".join(parts)

    def tick(self, n: int = 1, **info: Any) -> str | None:
        """Count ``n`` more units; write a line if due. Returns the line written, if any.

        ``info`` key/values (loss, fold, file, ...) are appended to the line;
        ``None`` values are left out.
        """
        self.done += n
        if not self.enabled:
            return None
        now = self._clock()
        last = self.total is not None and self.done >= self.total
        if not last and now - self._last_line < self.every_s:
            return None
        self._last_line = now
        line = self.message(**info)
        self.logger.info("%s", line)
        self.lines += 1
        return line
