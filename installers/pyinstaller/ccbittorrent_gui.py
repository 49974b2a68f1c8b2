"""Frozen entry point of the GUI executable (``ccBitTorrent``); the same as ``ccbt-gui``.

PyInstaller needs a script file, not a ``module:function`` reference, hence this file.
"""

import sys

from ccbt_gui.app import main

if __name__ == "__main__":
    sys.exit(main())
