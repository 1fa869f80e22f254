"""Every third-party package the code imports is pinned where its users install from: the engine's in
requirements.txt (what the demo and the add-on's engine set-up install), the tools', tests' and
benchmarks' in requirements-dev.txt (scripts/setup.sh --dev), which includes requirements.txt."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = {"cv2": "opencv-contrib-python", "ai_edge_litert": "ai-edge-litert", "bpy_extras": "bpy", "addon_utils": "bpy"}
LOCAL = {"engine", "hmp_addon", "tests", "addon_support", "bench_fit", "bench_real", "test_addon_retarget",
         "test_keypoints_hard_clips"}


def imported(folder):
    names = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return {DIST.get(n, n) for n in names - LOCAL if n not in sys.stdlib_module_names}


def pinned(name):
    out = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].split(";")[0].strip()  # a pin's environment marker: the pin is the same
        if line.startswith("-r "):
            out.update(pinned(line[3:]))
        elif "==" in line:
            dist, version = line.split("==")
            out[dist.strip()] = version.strip()
    return out


def test_the_engine_imports_only_pinned_runtime_packages():
    runtime = pinned("requirements.txt")
    optional = {"ray"}  # engine batch only: requirements-dev.txt (docs/batch.md), refused with one line without it
    assert imported("engine") - optional <= set(runtime)
    assert "scipy" in runtime and "lzstring" not in runtime


def test_tools_tests_and_benchmarks_import_only_dev_packages():
    dev = pinned("requirements-dev.txt")
    for folder in ("tools", "tests", "benchmarks", "scripts"):
        assert imported(folder) <= set(dev), folder
    assert "lzstring" in dev and "ray" in dev
    assert "requirements-dev.txt" in (ROOT / "scripts" / "setup.sh").read_text()
