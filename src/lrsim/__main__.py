"""`python -m lrsim ...` is `lrsim ...`."""

import sys

from lrsim.cli import main

sys.exit(main())
