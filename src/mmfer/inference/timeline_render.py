"""Drawing of a :class:`~mmfer.inference.timeline.Timeline`: a matplotlib PNG and a self-contained HTML page.

The figure has, top to bottom and on one time axis: one stacked-area panel per
series (``fused`` first, then ``voice``, ``face``, ``words``), each band one
emotion in a fixed colour, with the top label of each window drawn as a
coloured strip above the panel and named where it changes; grey where the
series is missing; a strip of the face crops the model read, each at the time
of its frame; and the words at their times (or the untimed transcript).

The HTML page holds the PNG inline (base64), the timeline data as JSON and a
few lines of its own JavaScript: moving the pointer over the figure highlights
the window under it in the table below. No external resource (CDN, font,
script) is referenced, so the file opens offline.

matplotlib is imported inside the functions (Agg backend), never at module import.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the timeline module imports this one (lazily): no import at run time
    from mmfer.inference.timeline import Timeline

__all__ = ["COLOURS", "figure_png", "html_page"]

#: Fixed colour per emotion (the same in every panel and every figure).
COLOURS: dict[str, str] = {
    "neutral": "#9e9e9e",
    "calm": "#8ecae6",
    "happy": "#ffb703",
    "sad": "#3a6ea5",
    "angry": "#d62828",
    "fearful": "#7b2cbf",
    "disgust": "#2a9d8f",
    "surprised": "#f77f00",
    "contempt": "#8d5524",
}
_EXTRA = ("#e76f51", "#264653", "#b5838d", "#6d6875", "#52b788", "#ff006e")
_PANEL_IN = 1.45  # inches per series panel
_STRIP_IN = 0.9  # inches of the thumbnail strip
_WORDS_IN = 0.55  # inches of the words row


def _colour(label: str, labels: list[str]) -> str:
    """Colour of an emotion: :data:`COLOURS`, else one of a spare palette by its position in ``labels``."""
    if label in COLOURS:
        return COLOURS[label]
    return _EXTRA[labels.index(label) % len(_EXTRA)] if label in labels else "#444444"


def _edges(tl: Timeline) -> np.ndarray:
    """``(W + 1,)`` span drawn for each window: from the first window's start, between
    consecutive centres, to the last window's end (each time shows the window centred nearest)."""
    c = tl.times
    return np.concatenate([[tl.t_start[0]], (c[:-1] + c[1:]) / 2, [tl.t_end[-1]]])


def _runs(top: list[str | None]) -> list[tuple[int, int, str | None]]:
    """``(first, last, label)`` runs of equal consecutive labels."""
    out: list[tuple[int, int, str | None]] = []
    for i, lab in enumerate(top):
        if out and out[-1][2] == lab:
            out[-1] = (out[-1][0], i, lab)
        else:
            out.append((i, i, lab))
    return out


def _panel(ax: Any, tl: Timeline, s: Any) -> None:
    """One series: stacked probability areas, grey where missing, top-label strip above."""
    present = s.present
    probs = np.where(present[:, None], s.probabilities, 0.0)  # (W, C_s)
    x = _edges(tl)  # (W + 1,)
    y = np.vstack([probs, probs[-1:]])  # (W + 1, C_s): step="post" holds each row over its span
    base = np.zeros(len(x))
    for j, lab in enumerate(s.labels):
        ax.fill_between(x, base, base + y[:, j], step="post", color=_colour(lab, tl.labels), lw=0)
        base = base + y[:, j]
    for i in np.flatnonzero(~present):
        ax.axvspan(x[i], x[i + 1], color="#dddddd", lw=0, zorder=3)
    for first, last, lab in _runs(s.top()):
        if lab is None:
            continue
        x0, x1 = x[first], x[last + 1]
        ax.fill_between([x0, x1], 1.03, 1.13, color=_colour(lab, tl.labels), lw=0, clip_on=False)
        ax.text((x0 + x1) / 2, 1.15, lab, ha="center", va="bottom", fontsize=7.5, clip_on=False)
    ax.set_ylim(0, 1)
    ax.set_yticks([0, 0.5, 1])
    ax.set_ylabel(s.name, rotation=0, ha="right", va="center", fontsize=10, fontweight="bold")
    ax.tick_params(labelsize=8)
    missing = sum(not ok for ok in present)
    if missing:
        why = next(m for m in s.missing if m)
        ax.text(0.995, 0.04, f"missing in {missing} window(s): {why[:90]}", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="#555555", zorder=4)  # fmt: skip


def _thumb_strip(ax: Any, fig: Any, tl: Timeline, t0: float, t1: float) -> None:
    """Face crops at their times, as many as fit side by side without overlapping."""
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("face\ncrops", rotation=0, ha="right", va="center", fontsize=9)
    if not tl.thumbnails:
        ax.text(0.5, 0.5, "no face crops (the model has no face modality)", transform=ax.transAxes,
                ha="center", va="center", fontsize=8, color="#555555")  # fmt: skip
        return
    box = ax.get_position()
    fw, fh = fig.get_size_inches()
    width_s = (box.height * fh) / (box.width * fw) * (t1 - t0)  # a square thumbnail, in seconds
    last = -np.inf
    for th in tl.thumbnails:
        if th.time_s - width_s / 2 < last:
            continue
        left = max(t0, min(th.time_s - width_s / 2, t1 - width_s))
        ax.imshow(th.image, extent=(left, left + width_s, 0.02, 0.98), aspect="auto", zorder=2)
        ax.plot([th.time_s, th.time_s], [0.0, 0.05], color="black", lw=1, zorder=3)
        last = left + width_s


def _words_row(ax: Any, tl: Timeline) -> None:
    """Timed words at their times (alternating heights), or the untimed transcript."""
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_ylabel("words", rotation=0, ha="right", va="center", fontsize=9)
    if not tl.words_timed:
        text = " ".join(w.text for w in tl.words)
        ax.text(0.01, 0.5, f"transcript (no word times): {text[:160]}", transform=ax.transAxes,
                ha="left", va="center", fontsize=8)  # fmt: skip
        return
    for i, w in enumerate(tl.words):
        assert w.start is not None and w.end is not None
        y = 0.7 if i % 2 == 0 else 0.3
        ax.plot([w.start, w.end], [y - 0.17, y - 0.17], color="#333333", lw=1.5)
        ax.text((w.start + w.end) / 2, y, w.text, ha="center", va="center", fontsize=8)


def figure_png(tl: Timeline, *, dpi: int = 110) -> tuple[bytes, dict[str, float]]:
    """Draw the timeline.

    Returns
    -------
    png : bytes
        The figure (no software/URL metadata).
    axes : dict
        ``{"x0", "x1"}`` left/right edge of the panels as fractions of the image width,
        ``{"t0", "t1"}`` the times at those edges (the HTML page maps pointer -> time with them).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = [_PANEL_IN] * len(tl.series) + [_STRIP_IN] + ([_WORDS_IN] if tl.words else [])
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(12, sum(rows) + 1.2), sharex=True, gridspec_kw={"height_ratios": rows}
    )
    axes = np.atleast_1d(axes)
    t0, t1 = float(tl.t_start.min()), float(tl.t_end.max())
    for ax, s in zip(axes, tl.series, strict=False):
        _panel(ax, tl, s)
    height = sum(rows) + 1.2
    fig.subplots_adjust(left=0.1, right=0.86, top=1 - 0.55 / height, bottom=0.6 / height, hspace=0.42)
    axes[0].set_xlim(t0, t1)
    _thumb_strip(axes[len(tl.series)], fig, tl, t0, t1)
    if tl.words:
        _words_row(axes[-1], tl)
    axes[-1].set_xlabel(
        f"time (s); windows of {tl.window_s:g} s every {tl.hop_s:g} s, each drawn where it is the "
        "window centred nearest; strip above a panel: its top label"
    )
    shown = list(dict.fromkeys(lab for s in tl.series for lab in s.labels))
    handles = [plt.Rectangle((0, 0), 1, 1, color=_colour(lab, tl.labels)) for lab in shown]
    fig.legend(handles, shown, loc="upper right", bbox_to_anchor=(0.995, 0.97), fontsize=8, frameon=False)
    name = str(tl.source).replace("\\", "/").rsplit("/", 1)[-1]
    fig.suptitle(f"Emotion timeline: {name}", x=0.1, ha="left", fontsize=12, fontweight="bold")
    if tl.caption:
        fig.text(0.1, 0.005, tl.caption, fontsize=7.5, color="#444444", ha="left", va="bottom", wrap=True)
    box = axes[0].get_position()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue(), {"x0": float(box.x0), "x1": float(box.x1), "t0": t0, "t1": t1}


_CSS = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem auto; max-width: 1320px; color: #222;
       padding: 0 1rem; }
h1 { font-size: 1.3rem; } .muted { color: #666; font-size: .85rem; }
#figure { position: relative; } #figure img { width: 100%; height: auto; display: block; }
#cursor { position: absolute; top: 0; bottom: 0; width: 2px; background: rgba(0,0,0,.45); display: none; }
#readout { min-height: 1.4rem; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-size: .85rem; margin-top: .8rem; }
td, th { border-bottom: 1px solid #eee; padding: .15rem .6rem; text-align: left; }
tr.hl td { background: #fff3bf; }
"""

_JS = """
"use strict";
const data = JSON.parse(document.getElementById("timeline-data").textContent);
const axes = data.axes, img = document.querySelector("#figure img");
const cursor = document.getElementById("cursor"), readout = document.getElementById("readout");
const rows = document.querySelectorAll("#windows tbody tr");
function nearest(t) {
  let best = 0;
  data.t_start.forEach((s, i) => {
    const c = (s + data.t_end[i]) / 2, b = (data.t_start[best] + data.t_end[best]) / 2;
    if (Math.abs(c - t) < Math.abs(b - t)) best = i;
  });
  return best;
}
img.addEventListener("mousemove", (ev) => {
  const r = img.getBoundingClientRect(), f = (ev.clientX - r.left) / r.width;
  if (f < axes.x0 || f > axes.x1) { cursor.style.display = "none"; return; }
  const t = axes.t0 + (f - axes.x0) / (axes.x1 - axes.x0) * (axes.t1 - axes.t0), i = nearest(t);
  cursor.style.display = "block"; cursor.style.left = (f * 100) + "%";
  rows.forEach((row, k) => row.classList.toggle("hl", k === i));
  const tops = data.series.map((s) => s.name + " " + (s.top[i] || "missing")).join(", ");
  readout.textContent = "t = " + t.toFixed(2) + " s, window " + data.t_start[i].toFixed(2) + "-" +
    data.t_end[i].toFixed(2) + " s: " + tops;
});
img.addEventListener("mouseleave", () => { cursor.style.display = "none"; });
"""


def _table(tl: Timeline) -> str:
    """HTML table: one row per window, top label (and its probability) of every series."""
    head = "".join(f"<th>{html.escape(s.name)}</th>" for s in tl.series)
    body = []
    tops = [s.top() for s in tl.series]
    for i in range(len(tl.t_start)):
        cells = []
        for s, top in zip(tl.series, tops, strict=True):
            lab = top[i]
            p = "" if lab is None else f" {s.probabilities[i, s.labels.index(lab)]:.2f}"
            cells.append(f"<td>{html.escape(lab or '–')}{p}</td>")
        body.append(f"<tr><td>{tl.t_start[i]:.2f}–{tl.t_end[i]:.2f} s</td>{''.join(cells)}</tr>")
    rows = "".join(body)
    return f'<table id="windows"><thead><tr><th>window</th>{head}</tr></thead><tbody>{rows}</tbody></table>'


def html_page(tl: Timeline, png: bytes, axes: dict[str, float]) -> str:
    """Self-contained HTML page: the PNG inline, the per-window table, pointer read-out (own JS/CSS)."""
    data = {**tl.to_dict(), "axes": axes}
    blob = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    name = html.escape(str(tl.source).replace("\\", "/").rsplit("/", 1)[-1])
    b64 = base64.b64encode(png).decode("ascii")
    caption = f'<p class="muted">{html.escape(tl.caption)}</p>' if tl.caption else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emotion timeline: {name}</title>
<style>{_CSS}</style></head>
<body>
<h1>Emotion timeline: {name}</h1>
<p class="muted">{len(tl.t_start)} windows of {tl.window_s:g} s every {tl.hop_s:g} s; series: \
{html.escape(", ".join(s.name for s in tl.series))}. Move the pointer over the figure.</p>
<div id="figure"><img alt="emotion timeline of {name}" src="data:image/png;base64,{b64}">
<div id="cursor"></div></div>
{caption}
<div id="readout"></div>
{_table(tl)}
<script type="application/json" id="timeline-data">{blob}</script>
<script>{_JS}</script>
</body></html>
"""
