"""Tables in the docs written from the benchmark scripts' own output, so a figure and the run that
made it cannot drift apart.

    .venv/bin/python tools/benchmark_tables.py --run      # run every benchmark, save, rewrite the tables
    .venv/bin/python tools/benchmark_tables.py --run real fingers   # some of them (--list: their names)
    .venv/bin/python tools/benchmark_tables.py            # rewrite every generated table from the saved runs
    .venv/bin/python tools/benchmark_tables.py --check    # exit 1, naming each table that differs

``--run`` runs the benchmarks of ``benchmarks/suite.py`` one after another with this interpreter and
keeps each run's whole output in ``docs/runs/NAME.txt`` (``.md`` for a page the benchmark writes
itself), headed by a comment saying when, on which commit and how long it ran; a run that fails keeps
its previous output. ``docs/runs/INDEX.md`` lists the saved runs (the table titled ``Runs``).

A generated table sits between two comments in a markdown page; the opening one says where its
figures come from:

    <!-- table source=docs/runs/rendered.md title="All hand tracks" rows="per-frame;stage II" bold="stage II" -->
    | method | PA-MPJPE | ... |
    <!-- /table -->

- ``source``: a benchmark's saved output (``--run`` keeps them in docs/runs/), relative to the
  repository root;
- ``title``: the line just above the table in that file (``engine.evaluation.methods.table`` writes
  ``**title**``; a plain line is matched too); the first markdown table after it is taken;
- ``rows`` (optional): the rows to keep, by their first cell, ";"-separated, in this order (default: all);
- ``bold`` (optional): a row whose first cell is set in bold, and each of its cells that is the
  column's lowest among the rows kept, or among the rows ``compare`` names (every figure of these
  tables is an error: lower is better).

Everything else in the page is left as it is.
"""

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from suite import BY_NAME, RUNS, Run  # noqa: E402  (benchmarks/suite.py: the runs behind the docs)

from engine.util.atomic import write_text  # noqa: E402

OPEN = re.compile(r"^<!-- table (?P<spec>.*?) -->\n", re.M)
CLOSE = "<!-- /table -->"
RUNS_DIR = ROOT / "docs" / "runs"
HEADER = re.compile(r"^<!-- run (?P<spec>.*?) -->$", re.M)


def parse_pairs(spec: str) -> dict:
    """``key=value key="two words"`` -> {key: value}."""
    out = {}
    for item in shlex.split(spec):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"spec item without '=': {item!r}")
        out[key] = value
    return out


def parse_spec(spec: str) -> dict:
    """A table's opening comment -> {key: value}, with ``source`` and ``title``."""
    out = parse_pairs(spec)
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


def run_path(run: Run) -> Path:
    return RUNS_DIR / f"{run.name}.{'md' if run.page else 'txt'}"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def execute(run: Run, work: Path, python: str = sys.executable) -> tuple[bool, float]:
    """Run ``run``'s commands; on success its output (headed by a ``<!-- run ... -->`` comment and each
    command line) replaces ``run_path(run)``; on failure that file is left as it was.
    -> (succeeded, seconds)."""
    out = run_path(run)
    page = out.with_suffix(".new" + out.suffix)  # where a page-writing command writes
    # the code that makes the figures: everything but the pages that show them
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs", ":!README.md")
    changes = "yes" if changed else "none"
    head = {"name": run.name, "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": _git("rev-parse", "--short", "HEAD"), "uncommitted": changes,
            "load": f"{os.getloadavg()[0]:.1f}", "cpus": str(os.cpu_count()), "python": platform.python_version()}
    t0, parts = time.monotonic(), []
    try:
        for command in run.commands:
            argv = [python] + [a.format(work=work, out=page) for a in command]
            shown = " ".join(["python"] + [shlex.quote(a.format(work="WORK", out=_shown(out)))
                                           for a in command])
            print(f"[{run.name}] {shown}", file=sys.stderr, flush=True)
            done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            if done.returncode != 0:
                print(f"[{run.name}] failed (exit {done.returncode}); {_shown(out)} kept as it was",
                      file=sys.stderr)
                return False, time.monotonic() - t0
            body = page.read_text(encoding="utf-8") if run.page else done.stdout
            body = body.replace(str(page), _shown(out)).replace(str(work), "WORK")  # as the command shows them
            parts.append(f"command: `{shown}`\n\n{body.strip()}\n")
    finally:  # a failed or interrupted run leaves no half-written page behind
        page.unlink(missing_ok=True)
    seconds = time.monotonic() - t0
    head["minutes"] = f"{seconds / 60:.1f}"
    spec = " ".join(f"{k}={shlex.quote(v)}" for k, v in head.items())
    write_text(out, f"<!-- run {spec} -->\n\n" + "\n".join(parts))
    return True, seconds


def index_page() -> str:
    """docs/runs/INDEX.md: a table of the saved runs of the suite, read from their headers."""
    lines = ["# Saved benchmark runs", "",
             "Written by `python tools/benchmark_tables.py --run` (benchmarks/suite.py); each file holds the "
             "run's whole output.", "", "**Runs**", "",
             "| run | what it measures | started | minutes | commit | uncommitted changes "
             "| load average at the start |",
             "|---|---|---|---|---|---|---|"]
    for run in RUNS:
        path = run_path(run)
        m = HEADER.search(path.read_text(encoding="utf-8")) if path.is_file() else None
        if m is None:
            lines.append(f"| {run.name} | {run.about} | not run | | | | |")
            continue
        h = parse_pairs(m.group("spec"))
        lines.append(f"| {run.name} | {run.about} | {h['started']} | {h['minutes']} | {h['commit']} "
                     f"| {h['uncommitted']} | {h['load']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from its source")
    p.add_argument("--run", nargs="*", metavar="NAME", default=None,
                   help="run these benchmarks of benchmarks/suite.py first (none named: all), then rewrite")
    p.add_argument("--work", default=os.path.expanduser("~/.cache/hmp-benchmarks"),
                   help="folder kept between runs (the rendered benchmark's renders)")
    p.add_argument("--list", action="store_true", help="list the suite's runs and exit")
    p.add_argument("pages", nargs="*", help="markdown pages (default: docs/*.md and README.md)")
    args = p.parse_args(argv)
    if args.list:
        for run in RUNS:
            print(f"{run.name:12s} {run.minutes:4.1f} min  {run.about}")
        print(f"{'all':12s} {sum(r.minutes for r in RUNS):4.1f} min")
        return 0
    failed = []
    if args.run is not None:
        unknown = [n for n in args.run if n not in BY_NAME]
        if unknown:
            p.error(f"no such run: {', '.join(unknown)} (--list)")
        chosen = [BY_NAME[n] for n in args.run] or list(RUNS)
        Path(args.work).mkdir(parents=True, exist_ok=True)
        for k, run in enumerate(chosen, 1):
            print(f"[{k}/{len(chosen)}] {run.name}: {run.about} (about {run.minutes:g} min)", file=sys.stderr)
            try:
                ok, seconds = execute(run, Path(args.work))
            except KeyboardInterrupt:
                print(f"[{run.name}] interrupted: the runs before it are saved, the rest not run", file=sys.stderr)
                failed += [r.name for r in chosen[k - 1:]]
                break
            print(f"[{run.name}] {'done' if ok else 'FAILED'} in {seconds / 60:.1f} min", file=sys.stderr)
            if not ok:
                failed.append(run.name)
        write_text(RUNS_DIR / "INDEX.md", index_page())
    pages = [Path(x) for x in args.pages] or sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
    stale = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        new, changed = regenerate(text)
        stale += [f"{page}: {title}" for title in changed]
        if changed and not args.check:
            page.write_text(new, encoding="utf-8")
    for line in stale:
        print(("differs from its source: " if args.check else "rewritten: ") + line)
    if failed:
        print("runs not saved (their previous output kept): " + ", ".join(failed), file=sys.stderr)
    return 1 if (stale and args.check) or failed else 0


if __name__ == "__main__":
    sys.exit(main())
