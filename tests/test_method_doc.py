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
