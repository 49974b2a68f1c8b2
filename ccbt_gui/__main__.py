"""``python -m ccbt_gui`` starts the desktop app (same as ``ccbt-gui``)."""

import sys

from ccbt_gui.app import main

sys.exit(main())
