"""`python -m shiptrackd.ctl`: the same as the shiptrackctl script."""

import sys

from .main import main

sys.exit(main())
