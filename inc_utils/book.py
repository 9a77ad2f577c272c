"""The built book: every executed chapter as a readable HTML page, and ``index.html``, its landing page.

Layout of ``build/<scale>/``: ``NN_name.ipynb`` (executed chapter) and ``NN_name.html`` beside it,
``figures/chN_*.png|pdf`` (chapter N's figures), and optionally ``claims/NN_name.csv`` with columns
claim, thesis, this_run, effect, margin, basis, holds (holds in ``HOLDS``). Pages are written readable by others
(0666 less the umask) and never hold nbval's ``# NBVAL_*`` markers.
"""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pandas as pd

from .runs import atomic_write_text

HOLDS = {"yes": "holds", "no": "fails", "not measurable at this scale": "unmeasurable"}
#: Chapter number -> the figure its card shows; otherwise the chapter's first figure by name.
HEADLINE = {1: "ch1_nc1", 2: "ch2_collapse_vs_error_0", 3: "ch3_umap_class_true", 4: "ch4_pca",
            6: "ch6_density"}
NBVAL_MARKER = re.compile(r"^[ \t]*# NBVAL_\w+[ \t]*\n?", re.MULTILINE)
SECTION = re.compile(r'<h2 id="([^"]+)">(.*?)<a class="anchor-link"')


def write_public(path: Path, text: str) -> Path:
    """Write ``text`` atomically, readable by others: mode 0666 less the process umask."""
    atomic_write_text(path, text)
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)
    return path


def chapter_title(notebook) -> str:
    """Text of the notebook's first markdown heading (an ``nbformat`` node); "" if it has none."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def _with_toc(body: str) -> str:
    """Insert a list of the page's sections (its h2 headings) after its first h1."""
    sections = SECTION.findall(body)
    end = body.find("</h1>")
    if not sections or end < 0:
        return body
    items = "".join(f'<li><a href="#{anchor}">{text}</a></li>' for anchor, text in sections)
    toc = f'<nav class="toc"><strong>Contents</strong><ol>{items}</ol></nav>'
    return body[:end + 5] + toc + body[end + 5:]


def to_html(notebook: Path) -> Path:
    """Render an executed chapter as ``<notebook>.html``, titled after its first heading, with a
    table of contents and without nbval markers; returns the page's path."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = NBVAL_MARKER.sub("", cell.source)
    title = chapter_title(nb) or notebook.stem
    body, _ = HTMLExporter().from_notebook_node(nb, resources={"metadata": {"name": title}})
    return write_public(notebook.with_suffix(".html"), _with_toc(body))


def _claims_table(path: Path) -> str:
    if not path.exists():
        return '<p class="muted">No claims table for this chapter.</p>'
    from .claims import number
    claims = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"basis": str}).fillna({"basis": ""})
    head = "".join(f"<th>{c}</th>" for c in ("claim", "thesis", "this run", "effect", "margin", "holds"))
    cell = lambda v: f"<td>{html.escape(str(v))}</td>"
    rows = "".join(
        f"<tr>{cell(r.claim)}{cell(r.thesis)}{cell(r.this_run)}{cell(number(r.effect))}"
        f"{cell(number(r.margin) + (f' ({r.basis})' if r.basis else ''))}"
        f'<td><span class="badge {HOLDS.get(r.holds, "unmeasurable")}">{html.escape(r.holds)}</span></td></tr>'
        for r in claims.itertuples())
    return f'<table class="claims"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _card(notebook: Path, out_dir: Path) -> str:
    import nbformat
    title = chapter_title(nbformat.read(notebook, as_version=4)) or notebook.stem
    number = int(notebook.stem.split("_")[0])
    figures = sorted((out_dir / "figures").glob(f"ch{number}_*.png"))
    headline = next((f for f in figures if f.stem == HEADLINE.get(number)), figures[0] if figures else None)
    thumb = (f'<a href="figures/{headline.name}"><img class="thumb" src="figures/{headline.name}" '
             f'alt="{headline.stem}"></a>' if headline else '<p class="muted">No figures.</p>')
    links = " · ".join(f'<a href="figures/{f.name}">{f.stem}</a>' for f in figures)
    count = f'{len(figures)} figure{"s" * (len(figures) != 1)}'
    return (f'<section class="card"><h2><a href="{notebook.stem}.html">{html.escape(title)}</a></h2>{thumb}'
            f'<p><a href="{notebook.stem}.html">read the chapter</a> · <a href="{notebook.name}">executed notebook '
            f'(.ipynb)</a></p>{_claims_table(out_dir / "claims" / f"{notebook.stem}.csv")}'
            f'<details><summary>{count} (PNG; PDF beside each)</summary><p>{links}</p></details>'
            f'</section>')


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
header p { color: #555; } .muted { color: #777; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(540px, 1fr)); gap: 1.5em; }
.card { border: 1px solid #ddd; border-radius: 8px; padding: 1em 1.2em; }
.card h2 { margin-top: 0; font-size: 1.2em; } .thumb { width: 100%; border: 1px solid #eee; }
table.claims { border-collapse: collapse; width: 100%; font-size: 0.9em; margin: 0.5em 0; }
.claims th, .claims td { border-bottom: 1px solid #eee; padding: 0.3em; text-align: left; vertical-align: top; }
.badge { border-radius: 4px; padding: 0.1em 0.5em; color: white; font-weight: bold; white-space: nowrap; }
.badge.holds { background: #009E73; } .badge.fails { background: #D55E00; } .badge.unmeasurable { background: #777; }
"""


def write_index(out_dir: Path, notebooks: list[Path], stamp: dict) -> Path:
    """Write ``out_dir/index.html``: one card per executed chapter (title, headline figure, claims
    table when ``claims/<stem>.csv`` exists, links to its page, notebook and figures), with the
    build's ``stamp`` (``reproduce.write_build_record``: scale, commit, date)."""
    scale, date, commit = stamp["scale"], stamp["date"], stamp.get("commit") or "unknown"
    cards = "".join(_card(nb, out_dir) for nb in notebooks)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>INC companion ({scale})</title>'
            f'<style>{STYLE}</style></head><body><header><h1>INC companion: the book ({html.escape(scale)} scale)'
            f'</h1><p>Companion to "Feature Learning in the Neural Collapse regime of Deep Classifiers" '
            f'(Lindegaard, NTNU 2023). Scale <strong>{html.escape(scale)}</strong> · commit '
            f'<code>{html.escape(commit)}</code> · built {html.escape(date)}. Claims: '
            f'<span class="badge holds">yes</span> the run agrees with the thesis, <span class="badge fails">no</span> '
            f'it does not, <span class="badge unmeasurable">not measurable at this scale</span>.</p></header>'
            f'<main class="cards">{cards}</main></body></html>')
    return write_public(out_dir / "index.html", page)
