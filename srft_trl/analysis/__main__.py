"""`python -m srft_trl.analysis`: the same as `srft-trl analyze`."""

import sys

from .cli import main

sys.exit(main())
