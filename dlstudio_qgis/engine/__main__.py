"""``python -m dlstudio_qgis.engine <command> [job.json] [options]``; see :mod:`.cli`."""

import sys

from .cli import main

sys.exit(main())
