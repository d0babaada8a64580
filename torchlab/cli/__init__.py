"""The `torchlab` command line (argparse only; the library does the work): main.py dispatches to
one module per sub-command."""
