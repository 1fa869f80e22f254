"""``python -m engine <command> ...``: see ``engine.commands.cli``."""

import sys

from engine.commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
