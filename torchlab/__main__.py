"""`python -m torchlab ...` is the same as the `torchlab` command."""

import sys

from torchlab.cli.main import main

sys.exit(main())
