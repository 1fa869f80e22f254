"""The engine's import graph: no cycles (module-level or inside functions), leaves stay leaves."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _engine_modules():
    mods = {}
    for path in (ROOT / "engine").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return mods


def import_graph():
    """engine module -> the engine modules it imports anywhere in its source (explicit imports only:
    importing a submodule is not counted as importing its parent package)."""
    mods = _engine_modules()
    graph = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in mods)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rsplit(".", 1)[0]
                    base = f"{pkg}.{base}" if base else pkg
                for a in node.names:
                    if f"{base}.{a.name}" in mods:
                        deps.add(f"{base}.{a.name}")
                    elif base in mods:
                        deps.add(base)
        deps.discard(name)
        graph[name] = deps
    return graph


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_engine_has_no_import_cycle():
    graph = import_graph()
    assert "engine.keypoints.cache" in graph and "engine.keypoints.types" in graph
    assert cycles(graph) == []


def test_keypoint_types_are_a_leaf_reexported():
    import engine.keypoints as kp
    from engine.keypoints import types

    assert import_graph()["engine.keypoints.types"] <= {"engine.contract.result"}
    assert kp.HandTrack is types.HandTrack and kp.KeypointOptions is types.KeypointOptions


def test_shared_helpers_live_below_their_users():
    """Commands share the parser (engine.commands.args), the device (engine.util.device), the projection
    (engine.util.camera) and the compared methods (engine.evaluation.methods), not each other's modules."""
    graph = import_graph()
    for name in ("engine.prior.train", "engine.evaluation.report", "engine.evaluation.benchmark", "engine.evaluation.evaluate"):
        assert not graph[name] & {"engine.commands.cli", "engine.capture"}, name
    assert "engine.evaluation.benchmark" not in graph["engine.evaluation.evaluate"]
    for name in ("engine.preview", "engine.evaluation.report", "engine.evaluation.metrics"):
        assert "engine.util.camera" in graph[name] and not any(m.startswith("engine.fit") for m in graph[name]), name
    for leaf in ("engine.util.camera", "engine.commands.args", "engine.util.device"):
        assert graph[leaf] <= {"engine.util.errors"}, leaf


def test_preview_report_and_metrics_do_not_import_torch():
    import subprocess
    import sys

    code = "import sys, engine.preview, engine.evaluation.report, engine.evaluation.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_fit_reads_its_temporal_helpers_from_one_leaf():
    """Gap filling and the One Euro filters live in engine.fit.temporal, which imports nothing of the
    engine; the fit's stages do not reach into the baselines or the per-frame estimate for them."""
    graph = import_graph()
    assert graph["engine.fit.temporal"] == set()
    assert "engine.fit.temporal" in graph["engine.fit.stages"] and "engine.fit.temporal" in graph["engine.fit.per_frame"]
    assert not graph["engine.fit.stages"] & {"engine.fit.baselines", "engine.fit.per_frame"}
