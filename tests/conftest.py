"""Test-run settings shared by every test file.

Under pytest-xdist (``scripts/test.sh`` runs one worker per core) each worker, and every engine or
Blender process a test starts, gets its share of the cores for torch's and OpenMP's thread pools.
Left alone, each worker's torch starts a thread per core, so the workers' pools oversubscribe the
machine and spin against each other (measured in docs/benchmarks.md, "Test suite"). This is set
before any test module imports torch; a value the caller set is kept.
"""

import os

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))
