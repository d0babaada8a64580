"""`torchlab CLI_ARGS...` with deterministic algorithms on, for the exact-resume test on CUDA
(test_accelerator.py). Not a test module itself.

    CUBLAS_WORKSPACE_CONFIG=:4096:8 python tests/deterministic_worker.py train TASK ...

Every op then uses a deterministic kernel where one exists (an op without one warns on stderr:
the test shows those warnings if the weights differ), and cuDNN picks its algorithms by fixed
heuristics instead of timing them, so two processes compute alike.
"""

from __future__ import annotations

import sys

import torch


def main() -> int:
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    from torchlab.cli.main import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
