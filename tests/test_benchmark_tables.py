"""The docs' generated tables (tools/benchmark_tables.py) are what the benchmarks' own output says."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("benchmark_tables", ROOT / "tools" / "benchmark_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_generated_table_in_the_docs_matches_its_source():
    assert _tool().main(["--check"]) == 0  # else: re-run `python tools/benchmark_tables.py`


def test_rows_are_selected_and_the_bold_row_marks_its_column_minima():
    tool = _tool()
    source = "\n".join(["**All**", "", "| method | A | B |", "|---|---|---|", "| x | 1.00 | 5.00 |",
                        "| y | 2.00 | 3.00 |", "| y, variant | 0.50 | 9.00 |", "", "**Other**"])
    table = tool.find_table(source, "All")
    assert tool.select(table, ["x", "y"], bold="y") == [
        "| method | A | B |", "|---|---|---|", "| x | 1.00 | 5.00 |", "| **y** | 2.00 | **3.00** |"]
    # a variant shown but not competing: the minima are judged among ``compare`` only
    out = tool.select(table, ["x", "y", "y, variant"], bold="y", compare=["x", "y"])
    assert out[3] == "| **y** | 2.00 | **3.00** |" and out[4] == "| y, variant | 0.50 | 9.00 |"
    page = f"before\n<!-- table source=x title=All -->\nstale\n{tool.CLOSE}\nafter\n"
    tool.render = lambda spec: "| fresh |\n"
    new, changed = tool.regenerate(page)
    assert new == f"before\n<!-- table source=x title=All -->\n| fresh |\n{tool.CLOSE}\nafter\n" and changed == ["All"]
