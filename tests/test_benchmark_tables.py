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


def test_a_run_saves_its_output_with_a_header_and_a_failed_run_keeps_the_previous_one(tmp_path, monkeypatch):
    tool = _tool()
    monkeypatch.setattr(tool, "RUNS_DIR", tmp_path)
    table = "print('**Speed**'); print(); print('| a | b |'); print('|---|---|'); print('| x | {v} |')"
    run = tool.Run("demo", (("-c", table.format(v="1.5")),), "a test run", 0.1)
    ok, _ = tool.execute(run, tmp_path)
    saved = (tmp_path / "demo.txt").read_text()
    header = tool.parse_pairs(tool.HEADER.search(saved).group("spec"))
    assert ok and header["name"] == "demo" and float(header["minutes"]) >= 0 and header["commit"]
    assert tool.find_table(saved, "Speed")[2] == "| x | 1.5 |"
    failing = tool.Run("demo", (("-c", table.format(v="2.5")), ("-c", "raise SystemExit(3)")), "fails", 0.1)
    ok, _ = tool.execute(failing, tmp_path)
    assert not ok and (tmp_path / "demo.txt").read_text() == saved
    assert not list(tmp_path.glob("*.new*"))


def test_every_run_of_the_suite_names_a_script_that_exists():
    tool = _tool()
    for run in tool.RUNS:
        for command in run.commands:
            script = command[0]
            assert script == "-m" or (ROOT / script).is_file(), (run.name, script)
    assert len({run.name for run in tool.RUNS}) == len(tool.RUNS)


def test_every_table_of_the_figures_page_is_generated():
    """docs/benchmarks.md holds no hand-written table: each one sits in a block the tool rewrites."""
    tool = _tool()
    inside, tables = False, 0
    for number, line in enumerate((ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").splitlines(), 1):
        if tool.OPEN.match(line + "\n"):
            inside, tables = True, tables + 1
        elif line.strip() == tool.CLOSE:
            inside = False
        elif line.startswith("|"):
            assert inside, f"docs/benchmarks.md:{number} is a table row outside a generated table"
    assert tables >= 20
