"""`torchlab CLI_ARGS...` with deterministic algorithms on, for the exact-resume test on CUDA
(test_accelerator.py). Not a test module itself.

    CUBLAS_WORKSPACE_CONFIG=:4096:8 python tests/deterministic_worker.py train TASK ...

Every op must then use a deterministic kernel (an op without one raises), and cuDNN picks its
algorithms by fixed heuristics instead of timing them, so two processes compute alike.
"""

from __future__ import annotations

import sys

import torch


def main() -> int:
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    from torchlab.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
