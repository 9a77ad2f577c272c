"""The built book on a fake build folder: tiny executed notebooks made with nbformat, no chapter run."""
import os
import stat
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from inc_utils import book


class Page(HTMLParser):
    """Collects the title, every href/src, every element id and the classes of every span."""

    def __init__(self, text: str):
        super().__init__()
        self.links, self.ids, self.badges, self.title, self._in_title = [], set(), [], "", False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [attrs[k] for k in ("href", "src") if k in attrs]
        self.ids.add(attrs.get("id"))
        self._in_title = tag == "title"
        if tag == "span" and "badge" in attrs.get("class", ""):
            self.badges.append(attrs["class"])

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        self._in_title = False


def chapter(path: Path, title: str) -> Path:
    nb = new_notebook(cells=[
        new_markdown_cell(f"# {title}\n\nWhat the chapter is about."),
        new_markdown_cell("## Final accuracies"),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(0.97)", outputs=[new_output("stream", text="0.97\n")]),
        new_markdown_cell("## Figures"),
    ])
    nbformat.write(nb, path)
    return path


@pytest.fixture
def build(tmp_path):
    out = tmp_path / "build" / "smoke"
    (out / "figures").mkdir(parents=True)
    (out / "claims").mkdir()
    notebooks = [chapter(out / "01_intermediate_nc.ipynb", "Chapter 1 — Neural collapse in intermediate layers"),
                 chapter(out / "02_collapse_vs_generalization.ipynb", "Chapter 2 — Layer of collapse")]
    for name in ("ch1_accuracy", "ch1_nc1", "ch2_collapse_vs_error_0"):
        for ext in ("png", "pdf"):
            (out / "figures" / f"{name}.{ext}").write_bytes(b"figure")
    (out / "claims" / "01_intermediate_nc.csv").write_text(
        "claim,thesis,this_run,effect,margin,basis,holds\n"
        "collapse in the middle,layer 5 of 10,layer 3 of 8,2.0,1.0,seed spread,yes\n"
        "NC2 reaches zero,< 0.01,0.2,-0.19,0.01,2 SE,no\n"
        "\"ResNet50, zig-zag\",yes,-,,,one seed only,not measurable at this scale\n")
    return out, notebooks


def test_chapter_page_is_titled_public_has_contents_and_no_nbval_marker(build):
    out, notebooks = build
    old = os.umask(0o022)
    try:
        page = book.to_html(notebooks[0])
    finally:
        os.umask(old)
    assert stat.S_IMODE(page.stat().st_mode) == 0o644
    text = page.read_text()
    parsed = Page(text)
    assert parsed.title == "Chapter 1 — Neural collapse in intermediate layers"
    assert "NBVAL" not in text and "0.97" in text
    toc = [link for link in parsed.links if link in ("#Final-accuracies", "#Figures")]
    assert toc[:2] == ["#Final-accuracies", "#Figures"]                 # the contents, in page order
    assert {"Final-accuracies", "Figures"} <= parsed.ids               # ... pointing at real headings
    assert "NBVAL_CHECK_OUTPUT" in nbformat.read(notebooks[0], as_version=4).cells[2].source   # notebook untouched


def test_index_has_one_card_per_chapter_and_every_link_exists(build):
    out, notebooks = build
    for nb in notebooks:
        book.to_html(nb)
    index = book.write_index(out, notebooks, {"scale": "smoke", "commit": "abc1234+dirty", "date": "2026-11-30 12:00 UTC"})
    text = index.read_text()
    parsed = Page(text)
    local = [link for link in parsed.links if not link.startswith("#")]
    missing = [link for link in local if not (out / link).is_file()]
    assert local and not missing
    assert {"01_intermediate_nc.html", "01_intermediate_nc.ipynb", "02_collapse_vs_generalization.ipynb",
            "figures/ch1_nc1.png", "figures/ch1_accuracy.png", "figures/ch2_collapse_vs_error_0.png"} <= set(local)
    assert text.count('<section class="card">') == 2
    assert 'src="figures/ch1_nc1.png"' in text                           # chapter 1's headline figure
    assert "Chapter 2 — Layer of collapse" in text and "smoke" in text and "2026-11-30 12:00 UTC" in text
    assert "commit <code>abc1234+dirty</code>" in text
    # the three claims of chapter 1 each with its badge (the legend in the header has one of each too)
    assert parsed.badges.count("badge holds") == 2 and parsed.badges.count("badge fails") == 2
    assert parsed.badges.count("badge unmeasurable") == 2 and "ResNet50, zig-zag" in text
    assert "No claims table for this chapter." in text                   # chapter 2 has none
    assert stat.S_IMODE(index.stat().st_mode) & 0o044 == 0o044


def test_chapter_title_is_the_first_heading():
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_markdown_cell("Intro\n\n## Chapter 3 — Clustering\n")])
    assert book.chapter_title(nb) == "Chapter 3 — Clustering"
    assert book.chapter_title(new_notebook(cells=[new_code_cell("x = 1")])) == ""
