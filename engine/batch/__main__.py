"""``python -m engine.batch ...``: the same as ``python -m engine batch ...``."""

import sys

from engine.batch.cli import main

sys.exit(main())
