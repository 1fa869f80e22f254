"""Test-run settings shared by every test file, and which files are collected.

Under pytest-xdist (``scripts/test.sh`` runs one worker per core) each worker, and every engine or
Blender process a test starts, gets its share of the cores for torch's and OpenMP's thread pools.
Left alone, each worker's torch starts a thread per core, so the workers' pools oversubscribe the
machine and spin against each other (measured in docs/history.md, "Test suite"). This is set
before any test module imports torch; a value the caller set is kept.

``--addon-only`` collects only the add-on's tests (tests/test_addon_*.py): scripts/test.sh's second
run, under bpy 4.2. Without bpy (Python 3.12: requirements-dev.txt has none) those files, which import
it, are not collected, and the report's header says so.
"""

import importlib.util
import os

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))

HAS_BPY = importlib.util.find_spec("bpy") is not None  # found, not imported: Blender loads in the tests
collect_ignore_glob = [] if HAS_BPY else ["test_addon_*.py"]


def pytest_addoption(parser):
    parser.addoption("--addon-only", action="store_true",
                     help="collect only the add-on's tests, tests/test_addon_*.py (scripts/test.sh's run under bpy 4.2)")


def _addon_test(path):
    return path.name.startswith("test_addon_")


def pytest_ignore_collect(collection_path, config):
    """--addon-only: the other test files in a folder are not collected."""
    name = collection_path.name
    if config.getoption("addon_only") and name.startswith("test_") and name.endswith(".py"):
        return not _addon_test(collection_path) or None
    return None


def pytest_collection_modifyitems(config, items):
    """--addon-only: the other files' tests are deselected too when the arguments name them (pytest
    collects a file named in the arguments whatever pytest_ignore_collect says)."""
    if config.getoption("addon_only"):
        dropped = [item for item in items if not _addon_test(item.path)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if _addon_test(item.path)]


def pytest_report_header(config):
    if not HAS_BPY:
        return "bpy is not installed (none for Python 3.12): tests/test_addon_*.py are not collected"
    return None
