"""Report rendering: the document model (blocks) to Markdown, HTML (one Jinja2 template) and CSV.

:func:`mmfer.evaluation.report.write_report` assembles the report as a list of
``(kind, payload)`` :data:`Block` pairs; report.md is written from them by
:func:`to_markdown` and report.html by the template
``templates/report.html.j2`` (:func:`to_html`, autoescaped, CSS inline and PNGs
embedded as base64 ``data:`` URIs so the page opens offline as one file).
"""

from __future__ import annotations

import base64
import csv
import io
from functools import cache
from typing import Any

import jinja2

from mmfer.evaluation.figures import Figure
from mmfer.evaluation.table_base import Table

__all__ = ["Block", "csv_text", "to_html", "to_markdown"]

#: ``(kind, payload)``: kind is "h1" | "h2" | "p" (str), "ul" (list[str]),
#: "banner-warn" | "banner-leak" (str), "table" (:class:`Table`) or "figure" (:class:`Figure`).
Block = tuple[str, Any]


def csv_text(t: Table) -> str:
    """The CSV of one table: ``csv_fields`` as header, None written as an empty cell."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=t.csv_fields, lineterminator="\n", extrasaction="raise")
    w.writeheader()
    for row in t.csv_rows:
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    """report.md from the document blocks (tables as pipe tables, figures as image links)."""
    out: list[str] = []
    for kind, payload in blocks:
        if kind == "h1":
            out.append(f"# {payload}\n")
        elif kind == "h2":
            out.append(f"## {payload}\n")
        elif kind == "p":
            out.append(f"{payload}\n")
        elif kind == "ul":
            out.append("\n".join(f"- {_md_cell(x)}" for x in payload) + "\n")
        elif kind in ("banner-warn", "banner-leak"):
            out.append(f"> **⚠ {payload}**\n")
        elif kind == "table":
            t: Table = payload
            out.append(f"### {_md_cell(t.title)}\n")
            if t.rows:
                out.append("| " + " | ".join(_md_cell(h) for h in t.headers) + " |")
                out.append("|" + "|".join("---" for _ in t.headers) + "|")
                out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows)
                out.append("")
            else:
                out.append("_(no rows)_\n")
            out.extend(f"_{_md_cell(n)}_\n" for n in t.notes)
        elif kind == "figure":
            f: Figure = payload
            # Unescaped brackets would end the alt text early.
            alt = _md_cell(f.caption).replace("[", "\\[").replace("]", "\\]")
            out.append(f"![{alt}]({f.filename})\n\n_{_md_cell(f.caption)}_\n")
    return "\n".join(out)


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mmfer.evaluation", "templates"),
        autoescape=True,  # every title, cell and note is escaped, whatever the corpus put in it
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails loudly instead of rendering ""
    )
    env.filters["b64"] = lambda png: base64.b64encode(png).decode("ascii")
    return env


def to_html(blocks: list[Block], title: str) -> str:
    """report.html from the same blocks as :func:`to_markdown`, through ``templates/report.html.j2``."""
    return _environment().get_template("report.html.j2").render(blocks=blocks, title=title)
