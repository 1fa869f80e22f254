"""Tables in the docs written from the benchmark scripts' own output, so a figure and the run that
made it cannot drift apart.

    .venv/bin/python tools/benchmark_tables.py            # rewrite every generated table in docs/*.md
    .venv/bin/python tools/benchmark_tables.py --check    # exit 1, naming each table that differs

A generated table sits between two comments in a markdown page; the opening one says where its
figures come from:

    <!-- table source=docs/benchmark_gt.md title="All hand tracks" rows="per-frame;stage II" bold="stage II" -->
    | method | PA-MPJPE | ... |
    <!-- /table -->

- ``source``: a file a benchmark wrote (``python -m engine benchmark --out`` writes
  docs/benchmark_gt.md; a script that prints its tables is saved with ``> docs/runs/NAME.txt``),
  relative to the repository root;
- ``title``: the line just above the table in that file (``engine.evaluation.methods.table`` writes
  ``**title**``; a plain line is matched too); the first markdown table after it is taken;
- ``rows`` (optional): the rows to keep, by their first cell, ";"-separated, in this order (default: all);
- ``bold`` (optional): a row whose first cell is set in bold, and each of its cells that is the
  column's lowest among the rows kept, or among the rows ``compare`` names (every figure of these
  tables is an error: lower is better).

Everything else in the page is left as it is. To refresh the figures, re-run the benchmark that
writes the source, then this tool.
"""

import argparse
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPEN = re.compile(r"^<!-- table (?P<spec>.*?) -->\n", re.M)
CLOSE = "<!-- /table -->"


def parse_spec(spec: str) -> dict:
    """``key=value key="two words"`` -> {key: value}."""
    out = {}
    for item in shlex.split(spec):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"table spec item without '=': {item!r}")
        out[key] = value
    if "source" not in out or "title" not in out:
        raise ValueError(f"a table needs source= and title=: {spec!r}")
    return out


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def find_table(text: str, title: str) -> list[str]:
    """The lines of the first markdown table after the line ``title`` (or ``**title**``)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() in (title, f"**{title}**"):
            rest = lines[i + 1:]
            start = next((k for k, ln in enumerate(rest) if ln.startswith("|")), None)
            if start is None:
                break
            end = next((k for k in range(start, len(rest)) if not rest[k].startswith("|")), len(rest))
            return rest[start:end]
    raise ValueError(f"no table titled {title!r}")


def _number(text: str) -> float | None:
    try:
        return float(text.strip("*"))
    except ValueError:
        return None


def select(table: list[str], rows: list[str] | None = None, bold: str | None = None,
           compare: list[str] | None = None) -> list[str]:
    """The table's header and rule, then ``rows`` (by first cell, in that order; all when None),
    with row ``bold`` and its column minima (among ``compare``, default the rows kept) in bold."""
    head, rule, body = table[0], table[1], [cells(ln) for ln in table[2:]]
    by_name = {r[0]: r for r in body}
    if rows is not None:
        missing = [r for r in rows if r not in by_name]
        if missing:
            raise ValueError(f"rows not in the table: {missing}")
        body = [by_name[r] for r in rows]
    judged = body if compare is None else [by_name[r] for r in compare]
    out = [head, rule]
    for row in body:
        row = list(row)
        if bold is not None and row[0] == bold:
            for k in range(1, len(row)):
                column = [_number(r[k]) for r in judged if k < len(r)]
                value = _number(row[k])
                if value is not None and value == min(v for v in column if v is not None):
                    row[k] = f"**{row[k]}**"
            row[0] = f"**{row[0]}**"
        out.append("| " + " | ".join(row) + " |")
    return out


def render(spec: dict) -> str:
    source = (ROOT / spec["source"]).read_text(encoding="utf-8")
    names = {k: [r.strip() for r in spec[k].split(";")] if spec.get(k) else None for k in ("rows", "compare")}
    table = select(find_table(source, spec["title"]), names["rows"], spec.get("bold"), names["compare"])
    return "\n".join(table) + "\n"


def regenerate(text: str) -> tuple[str, list[str]]:
    """Every generated table of a page rewritten from its source -> (new text, titles that changed)."""
    out, changed, pos = [], [], 0
    for m in OPEN.finditer(text):
        if m.start() < pos:
            continue
        end = text.find(CLOSE, m.end())
        if end < 0:
            raise ValueError(f"table {m.group('spec')!r} has no closing {CLOSE}")
        spec = parse_spec(m.group("spec"))
        new = render(spec)
        if text[m.end():end] != new:
            changed.append(spec["title"])
        out += [text[pos:m.end()], new]
        pos = end
    out.append(text[pos:])
    return "".join(out), changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from its source")
    p.add_argument("pages", nargs="*", help="markdown pages (default: docs/*.md)")
    args = p.parse_args(argv)
    pages = [Path(x) for x in args.pages] or sorted((ROOT / "docs").glob("*.md"))
    stale = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        new, changed = regenerate(text)
        stale += [f"{page}: {title}" for title in changed]
        if changed and not args.check:
            page.write_text(new, encoding="utf-8")
    for line in stale:
        print(("differs from its source: " if args.check else "rewritten: ") + line)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
