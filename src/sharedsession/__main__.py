"""``python -m sharedsession``: the ``sharedsession`` command."""

from __future__ import annotations

import sys

from sharedsession.cli import main

sys.exit(main())
