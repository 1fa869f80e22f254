"""Every third-party package the code imports is pinned where its users install from: the engine's in
requirements.txt (what the demo and the add-on's engine set-up install), the tools', tests' and
benchmarks' in requirements-dev.txt (scripts/setup.sh --dev), which includes requirements.txt."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST = {"cv2": "opencv-contrib-python", "ai_edge_litert": "ai-edge-litert", "bpy_extras": "bpy", "addon_utils": "bpy"}
# the repository's own packages, and any module of its script folders imported by another (tests'
# helpers such as addon_support, a benchmark reusing another's functions)
LOCAL = {"engine", "hmp_addon", "tests"} | {p.stem for folder in ("tests", "benchmarks", "tools", "scripts")
                                            for p in (ROOT / folder).glob("*.py")}


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


def _wheel_runs_on(wheel, minor):
    """Whether a wheel file's Python and ABI tags take CPython 3.<minor>."""
    python_tags, abi = wheel[:-len(".whl")].split("-")[-3:-1]
    for tag in python_tags.split("."):
        if tag in ("py3", f"py3{minor}", f"cp3{minor}"):
            return True
        if abi == "abi3" and tag.startswith("cp3") and int(tag[3:]) <= minor:  # the stable ABI, from 3.x on
            return True
    return False


@pytest.mark.slow
def test_the_engine_installs_on_python_3_12(tmp_path):
    """requirements.txt resolves to wheels for CPython 3.12 (Blender 5.1's Python) on this platform:
    every pin at its version, every dependency a wheel for 3.12, no source build.
    Why pip's resolver (--dry-run --python-version 3.12) and not an environment: on Linux a 3.12
    install is the 3.13 one's size (PyPI's CUDA torch, ~3 GB to download, 6.6 GB on disk) for what
    the resolver already shows; 3.11 and 3.13 are installed and run for real (tests/test_engine_setup.py,
    scripts/test.sh). The dependencies' environment markers are evaluated for this Python, not 3.12."""
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--disable-pip-version-check", "--only-binary=:all:", "--python-version", "3.12",
                           "--target", str(tmp_path / "target"), "--report", str(report),
                           "-r", str(ROOT / "requirements.txt")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = {re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower(): item
              for item in json.loads(report.read_text())["install"]}
    for dist, version in pinned("requirements.txt").items():
        assert chosen[dist]["metadata"]["version"].split("+")[0] == version, dist  # torch may be 2.13.0+cpu
    wheels = [item["download_info"]["url"].rsplit("/", 1)[-1] for item in chosen.values()]
    assert [w for w in wheels if not (w.endswith(".whl") and _wheel_runs_on(w, 12))] == []
    assert not _wheel_runs_on("numpy-2.4.6-cp313-cp313-manylinux_2_27_x86_64.whl", 12)  # the check can say no
