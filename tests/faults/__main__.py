"""Entry point: `python -m tests.faults [--scenario NAME ...] [--tickets N] [--quick]`."""

import sys

from tests.faults.cli import main

sys.exit(main())
