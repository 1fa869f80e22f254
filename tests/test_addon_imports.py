"""The add-on's modules import each other without a cycle (function-local imports included)."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "hmp_addon")


def import_graph(package_dir=PACKAGE):
    """{module: set of hmp_addon modules it imports} from the source (ast; every import statement,
    also those inside functions). ``from . import a, b`` -> a, b; ``from .a import x`` -> a."""
    modules = {f[:-3] for f in os.listdir(package_dir) if f.endswith(".py")}
    graph = {}
    for name in modules:
        with open(os.path.join(package_dir, name + ".py"), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hmp_addon":
                deps.add(node.module.split(".")[1] if "." in node.module else "__init__")
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycle(graph):
    """One import cycle as a list [a, b, ..., a], or None (depth-first search)."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, path + [dep])
                if found:
                    return found
        state[node] = "closed"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_local_imports(tmp_path):
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import g\n")
    assert import_graph(str(tmp_path)) == {"a": {"b"}, "b": {"a"}}


def test_hmp_addon_has_no_import_cycle():
    graph = import_graph()
    assert "settings" in graph and "preferences" in graph
    # __init__ imports every module to register them; nothing imports __init__ back but headless
    # (through importlib, which is not an import statement)
    graph.pop("__init__")
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_settings_is_a_leaf():
    assert import_graph()["settings"] <= {"engine_link"}
