"""`python -m nst_daemon`: the same as `nst-daemon`."""

import sys

from .cli import main

sys.exit(main())
