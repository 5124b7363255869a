"""``python -m arengine`` is the same as the ``arengine`` command."""

import sys

from arengine.cli import main

sys.exit(main())
