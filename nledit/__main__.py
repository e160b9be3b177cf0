"""`python -m nledit` (also what `accelerate launch -m nledit` runs)."""

import sys

from .cli import main

sys.exit(main())
