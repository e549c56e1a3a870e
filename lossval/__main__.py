"""``python -m lossval ...``: the ``lossval`` command, for an environment without its entry point."""

import os
import sys

from lossval.cli import console_main

if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(console_main())
