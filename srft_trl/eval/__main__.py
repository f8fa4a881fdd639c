"""`python -m srft_trl.eval`: the same as `srft-trl eval`."""

import sys

from .cli import main

sys.exit(main())
