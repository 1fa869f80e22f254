"""The method is written down in the repository (docs/method.md) and the code cites it there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sources():
    for folder in ("engine", "hmp_addon", "docs", "scripts", "tools", "benchmarks"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md") and "runs" not in path.parts:
                yield path
    yield ROOT / "README.md"


def test_nothing_cites_the_method_document_outside_the_repository():
    cited = {p.relative_to(ROOT).as_posix() for p in _sources() if "HMP_METHOD" in p.read_text(encoding="utf-8")}
    assert not cited, sorted(cited)


def test_every_citation_of_docs_method_names_a_section_it_has():
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "method.md").read_text(encoding="utf-8"), re.M))
    for path in _sources():
        for number in re.findall(r"method\.md\)? section (\d+)", path.read_text(encoding="utf-8")):
            assert number in sections, (path, number)


def test_every_cited_section_of_the_figures_pages_exists():
    """``history.md, "Speed"`` / ``docs/benchmarks.md ("Batch")``: the quoted name starts a heading of that page."""
    headings = {name: [h.strip() for h in re.findall(r"^#+ (.+)$", (ROOT / "docs" / name).read_text(encoding="utf-8"),
                                                     re.M)]
                for name in ("history.md", "benchmarks.md")}
    cited = 0
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for name, quoted in re.findall(r"(history\.md|benchmarks\.md)\)?,? \(?\"([^\"]+)\"", text):
            quoted = " ".join(quoted.replace("#", "").split())
            assert any(h.startswith(quoted) for h in headings[name]), (path.relative_to(ROOT), name, quoted)
            cited += 1
    assert cited > 10
