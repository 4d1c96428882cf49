"""``python -m sign2text_core``: the ``sign2text`` command."""

import sys

from sign2text_core.cli import main

sys.exit(main())
