"""Frozen entry point of the ``ccbt`` console executable shipped inside the app bundle."""

import sys

from ccbt_engine.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
