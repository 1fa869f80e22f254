"""``python -m engine.commands.batch ...``: the same as ``python -m engine batch ...``."""

import sys

from engine.commands.batch.cli import main

sys.exit(main())
