"""Markdown tables as the benchmark scripts print them, in the shape tools/benchmark_tables.py reads
from their saved output: a blank line, ``**title**`` (fixed text: nothing that changes between runs,
so a page can name the table), optionally one plain line of run-specific detail, a blank line, then
the table (header, rule, rows).
"""

import sys


def row(cells) -> str:
    """One markdown row; a cell that is None prints as "-"."""
    return "| " + " | ".join("-" if c is None else str(c) for c in cells) + " |"


def print_title(title: str, columns, detail: str | None = None, file=None) -> None:
    """The title, the optional detail line and the table's header and rule; print the rows with
    ``row`` (one at a time, e.g. as they are measured; nothing else may come between them)."""
    file = file or sys.stdout
    print(f"\n**{title}**", file=file)
    if detail:
        print(detail, file=file)
    print(file=file)
    print(row(columns), file=file)
    print("|" + "---|" * len(columns), file=file, flush=True)


def print_table(title: str, columns, rows, detail: str | None = None, file=None) -> None:
    """A whole table: ``print_title`` then each of ``rows`` (sequences of cells)."""
    file = file or sys.stdout
    print_title(title, columns, detail, file)
    for cells in rows:
        print(row(cells), file=file)
    file.flush()
